package db

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// PasswordCheckTake takes a token from the bucket named handle (a handle,
// or a device), which holds at most burst and gains perSecond a second,
// and reports whether there was one. Every node shares the buckets. A refusal writes nothing, so that a
// flood of guesses costs a read each.
func PasswordCheckTake(ctx context.Context, q Querier, handle string, perSecond float64, burst int) (bool, error) {
	var tokens float64
	err := q.QueryRow(ctx, `SELECT least($3, tokens + $2 * extract(epoch FROM now() - updated_at))
		FROM password_checks WHERE handle = $1`, handle, perSecond, burst).Scan(&tokens)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return false, translate(err, "reading a password check bucket")
	case tokens < 1:
		return false, nil
	}
	var taken bool
	err = q.QueryRow(ctx, `
		INSERT INTO password_checks AS b (handle, tokens, updated_at) VALUES ($1, $3::float8 - 1, now())
		ON CONFLICT (handle) DO UPDATE
		SET tokens = least($3, b.tokens + $2 * extract(epoch FROM now() - b.updated_at)) - 1, updated_at = now()
		WHERE least($3, b.tokens + $2 * extract(epoch FROM now() - b.updated_at)) >= 1
		RETURNING true`, handle, perSecond, burst).Scan(&taken)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return taken, translate(err, "taking a password check")
}

// PasswordCheckRefund gives back a token taken from handle's bucket, for
// a check that passed: the owner's own log-ins do not count as guesses.
func PasswordCheckRefund(ctx context.Context, q Querier, handle string, burst int) error {
	_, err := q.Exec(ctx, `UPDATE password_checks SET tokens = least($2, tokens + 1) WHERE handle = $1`, handle, burst)
	return translate(err, "refunding a password check")
}

// PrunePasswordChecks deletes the buckets untouched for refill, the time
// an empty one takes to fill up, and returns how many.
func PrunePasswordChecks(ctx context.Context, q Querier, refill time.Duration) (int64, error) {
	tag, err := q.Exec(ctx, `DELETE FROM password_checks WHERE updated_at < now() - $1::interval`, refill)
	return tag.RowsAffected(), translate(err, "pruning password checks")
}
