package db

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// SessionInsert stores a session under the hash of its token.
func SessionInsert(ctx context.Context, q Querier, tokenHash []byte, userID string, expiresAt time.Time) error {
	_, err := q.Exec(ctx, `INSERT INTO sessions (token_hash, user_id, expires_at) VALUES ($1, $2, $3)`,
		tokenHash, userID, expiresAt)
	return translate(err, "inserting session")
}

// SessionUser returns the user of an unexpired session and when it
// expires, or ErrNotFound.
func SessionUser(ctx context.Context, q Querier, tokenHash []byte) (userID string, expiresAt time.Time, err error) {
	err = q.QueryRow(ctx, `SELECT user_id, expires_at FROM sessions WHERE token_hash = $1 AND expires_at > now()`,
		tokenHash).Scan(&userID, &expiresAt)
	return userID, expiresAt, translate(err, "finding session")
}

// SessionDelete revokes a session; a missing one is not an error.
func SessionDelete(ctx context.Context, q Querier, tokenHash []byte) error {
	_, err := q.Exec(ctx, `DELETE FROM sessions WHERE token_hash = $1`, tokenHash)
	return translate(err, "deleting session")
}

// SessionsEnded returns those of the token hashes whose session is gone or
// expired.
func SessionsEnded(ctx context.Context, q Querier, tokenHashes [][]byte) ([][]byte, error) {
	rows, err := q.Query(ctx, `SELECT h FROM unnest($1::bytea[]) AS h
		WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.token_hash = h AND s.expires_at > now())`, tokenHashes)
	if err != nil {
		return nil, translate(err, "checking sessions")
	}
	ended, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	return ended, translate(err, "checking sessions")
}
