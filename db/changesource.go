package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// EventsPublication is the publication of the event log's inserts.
const EventsPublication = "pods_events"

// ErrChangeSourceInUse means another live node uses the other change
// source.
var ErrChangeSourceInUse = errors.New("another node of this database uses the other change source")

// UseNotify turns the event log's NOTIFY trigger on or off for node nodeID,
// and gives the node a lease of leaseTTL in the same locked transaction.
// With the logical-replication change source it is off, so writers never
// take the notification queue's lock. Every node on a database must use the
// same source: switching while another node holds a lease is refused with
// ErrChangeSourceInUse, as it would stop that node's deliveries; since each
// node holds its lease from here on, two nodes starting together with
// different sources cannot both get through.
//
// It alters the table only when the trigger is not already as wanted: the
// ALTER waits for, and then blocks, every write to the event log, which a
// node restarting under load should not do.
func UseNotify(ctx context.Context, pool *Pool, nodeID string, leaseTTL time.Duration, on bool) error {
	return InTx(ctx, pool, func(tx Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('pods change source'))`); err != nil {
			return translate(err, "locking the change source")
		}
		if _, err := NodeRenew(ctx, tx, nodeID, leaseTTL); err != nil {
			return err
		}
		var enabled bool
		if err := tx.QueryRow(ctx, `SELECT tgenabled <> 'D' FROM pg_trigger
			WHERE tgrelid = 'events'::regclass AND tgname = 'events_notify'`).Scan(&enabled); err != nil {
			return translate(err, "reading the events trigger")
		}
		if enabled == on {
			return nil
		}
		var other string
		err := tx.QueryRow(ctx, `SELECT id FROM nodes WHERE lease_until > now() AND id <> $1 LIMIT 1`, nodeID).Scan(&other)
		if err == nil {
			source := "wal"
			if enabled {
				source = "notify"
			}
			return fmt.Errorf("%w: node %q is live with --change-source %s", ErrChangeSourceInUse, other, source)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return translate(err, "looking for live nodes")
		}
		action := "DISABLE"
		if on {
			action = "ENABLE"
		}
		_, err = tx.Exec(ctx, `ALTER TABLE events `+action+` TRIGGER events_notify`)
		return translate(err, "switching the events trigger")
	})
}

// CheckLogicalReplication returns an error saying what to change if the
// server cannot stream logical replication.
func CheckLogicalReplication(ctx context.Context, q Querier) error {
	var level string
	if err := q.QueryRow(ctx, `SHOW wal_level`).Scan(&level); err != nil {
		return translate(err, "reading wal_level")
	}
	if level != "logical" {
		return fmt.Errorf("the wal change source needs wal_level = logical, but the server has %q: set it in postgresql.conf and restart the server, or use --change-source=notify", level)
	}
	return nil
}

// NotificationQueueUsage returns the fraction of the server's NOTIFY queue
// in use: at 1, every NOTIFY fails.
func NotificationQueueUsage(ctx context.Context, q Querier) (float64, error) {
	var usage float64
	err := q.QueryRow(ctx, `SELECT pg_notification_queue_usage()`).Scan(&usage)
	return usage, translate(err, "reading notification queue usage")
}

// WALBytesAfter returns how many bytes of WAL the server has written past
// lsn, a position in the form "16/B374D848".
func WALBytesAfter(ctx context.Context, q Querier, lsn string) (float64, error) {
	var n float64
	err := q.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::float8`, lsn).Scan(&n)
	return n, translate(err, "reading the WAL position")
}

// Notify sends a notification on channel, at once (outside any
// transaction of the caller).
func Notify(ctx context.Context, pool *Pool, channel, payload string) error {
	_, err := pool.Exec(ctx, `SELECT pg_notify($1, $2)`, channel, payload)
	return translate(err, "notifying "+channel)
}
