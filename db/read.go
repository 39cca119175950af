package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// MarkRead moves userID's read cursor in a pod forward to seq (at most the
// pod's last seq; never backward) and returns the cursor and the number of
// unread messages after it: messages by others (deleted ones are gone). If
// the cursor moved, the user's streams are told (NOTIFY pods_read). A pod
// the user is not a member of is ErrNotFound.
func MarkRead(ctx context.Context, pool *Pool, podID, userID string, seq int64) (readSeq, unread int64, err error) {
	err = InTx(ctx, pool, func(tx Tx) error {
		var old, last int64
		err := tx.QueryRow(ctx, `
			SELECT m.read_seq, p.last_seq FROM memberships m JOIN pods p ON p.id = m.pod_id
			WHERE m.pod_id = $1 AND m.user_id = $2 FOR UPDATE OF m`, podID, userID).Scan(&old, &last)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("marking read: %w", ErrNotFound)
		}
		if err != nil {
			return translate(err, "reading read cursor")
		}
		readSeq = max(old, min(seq, last))
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM messages WHERE pod_id = $1 AND seq > $2 AND author_id <> $3`,
			podID, readSeq, userID).Scan(&unread); err != nil {
			return translate(err, "counting unread messages")
		}
		if readSeq == old {
			return nil
		}
		_, err = tx.Exec(ctx, `
			WITH moved AS (UPDATE memberships SET read_seq = $3::bigint WHERE pod_id = $1 AND user_id = $2)
			SELECT pg_notify('pods_read', $2::uuid::text || ':' || $1::uuid::text || ':' || $3::bigint::text || ':' || $4::bigint::text)`,
			podID, userID, readSeq, unread)
		return translate(err, "moving read cursor")
	})
	return readSeq, unread, err
}

// NotifyTyping tells the pod's streams that userID started or stopped
// typing (NOTIFY pods_typing; nothing is stored). It reports false if the
// user is not a member of the pod.
func NotifyTyping(ctx context.Context, q Querier, podID, userID string, typing bool) (bool, error) {
	flag := "0"
	if typing {
		flag = "1"
	}
	tag, err := q.Exec(ctx, `
		SELECT pg_notify('pods_typing', $1::uuid::text || ':' || $2::uuid::text || ':' || $3::text)
		FROM memberships WHERE pod_id = $1 AND user_id = $2`, podID, userID, flag)
	if err != nil {
		return false, translate(err, "sending typing")
	}
	return tag.RowsAffected() == 1, nil
}
