package db

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// NodeRenew extends a node's lease to ttl from now, creating the node if it
// is missing. It returns when the node's row was made: when that changes,
// the node's streams must be recorded again (a sweep removed them with the
// row, which this call or a StreamOpened then made again, or the database
// is new).
func NodeRenew(ctx context.Context, q Querier, nodeID string, ttl time.Duration) (started time.Time, err error) {
	err = q.QueryRow(ctx, `
		INSERT INTO nodes (id, lease_until) VALUES ($1, now() + $2::interval)
		ON CONFLICT (id) DO UPDATE SET lease_until = EXCLUDED.lease_until
		RETURNING started_at`, nodeID, ttl).Scan(&started)
	return started, translate(err, "renewing node lease")
}

// NodeRemove removes a node that shuts down, with its streams. Its users
// go offline at the next sweep unless they open a stream elsewhere within
// the grace period.
//
// It locks the users' presence rows, then the node's row, then (deleting
// it) its streams: the presence sweep's order.
func NodeRemove(ctx context.Context, q Querier, nodeID string) error {
	_, err := q.Exec(ctx, `
		WITH gone AS (DELETE FROM nodes WHERE id = $1)
		UPDATE presence SET last_closed = now()
		WHERE user_id IN (SELECT user_id FROM presence_streams WHERE node_id = $1)`, nodeID)
	return translate(err, "removing node")
}

// StreamOpened records an open stream of userID on nodeID (creating the
// node with a lease of ttl if it has none) and marks the user online,
// announcing it if they were not. One statement: every stream start waits
// for it.
func StreamOpened(ctx context.Context, pool *Pool, nodeID string, ttl time.Duration, streamID, userID string) error {
	// changed_at is now() (the transaction's start) only if this statement
	// turned the user online. The main query reads seen, so the user's
	// presence row is locked before the node's row, in the sweep's order;
	// the stream's foreign key to the node is checked at the statement's
	// end, when the node's row is visible.
	_, err := pool.Exec(ctx, `
		WITH node AS (
			INSERT INTO nodes (id, lease_until) VALUES ($1, now() + $2::interval)
			ON CONFLICT DO NOTHING),
		stream AS (
			INSERT INTO presence_streams (node_id, stream_id, user_id) VALUES ($1, $3, $4)
			ON CONFLICT DO NOTHING),
		seen AS (
			INSERT INTO presence AS p (user_id, online) VALUES ($4, true)
			ON CONFLICT (user_id) DO UPDATE SET online = true, last_opened = now(),
				changed_at = CASE WHEN p.online THEN p.changed_at ELSE now() END
			RETURNING changed_at = now() AS changed)
		SELECT presence_announce($4, true) FROM seen WHERE changed`, nodeID, ttl, streamID, userID)
	return translate(err, "recording stream")
}

// StreamClosed removes a closed stream.
func StreamClosed(ctx context.Context, q Querier, nodeID, streamID, userID string) error {
	_, err := q.Exec(ctx, `
		WITH closed AS (DELETE FROM presence_streams WHERE node_id = $1 AND stream_id = $2)
		UPDATE presence SET last_closed = now() WHERE user_id = $3`, nodeID, streamID, userID)
	return translate(err, "removing stream")
}

// PresenceSweep takes offline, announcing it, every user with no stream on
// a live node and no stream opened or closed within grace, then removes
// nodes whose lease expired, with their streams. Only one node sweeps at a
// time; the others return at once. It returns how many went offline.
//
// A user can go offline only after a stream of theirs ended: a close (or
// their node's removal) records it in last_closed, and the sweep records it
// for the streams of the dead nodes it removes. So the sweep looks only at
// users who closed a stream after their last open, not at every online
// user; full makes it look at all of them, as a safety net.
//
// It locks users' presence rows, then nodes' rows: the order of
// StreamOpened and NodeRemove.
func PresenceSweep(ctx context.Context, pool *Pool, grace time.Duration, full bool) (int, error) {
	offline := 0
	err := InTx(ctx, pool, func(tx Tx) error {
		var locked bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(hashtext('pods.presence_sweep'))`).Scan(&locked); err != nil || !locked {
			return err
		}
		// Who has no stream on a live node: for the few who closed one, a
		// probe each (OFFSET 0 keeps the planner, which cannot estimate how
		// few they are, from reading every stream for an anti-join); for
		// everyone, that anti-join.
		liveStream := `SELECT 1 FROM presence_streams s JOIN nodes n ON n.id = s.node_id
		               WHERE s.user_id = p.user_id AND n.lease_until > now()`
		noLiveStream := `last_closed >= last_opened AND NOT EXISTS (` + liveStream + ` OFFSET 0)`
		if full {
			noLiveStream = `NOT EXISTS (` + liveStream + `)`
		}
		// A stream opening concurrently updates last_opened, which the
		// update rechecks on the row it waited for.
		rows, err := tx.Query(ctx, `
			WITH off AS (
				UPDATE presence p SET online = false, changed_at = now()
				WHERE online
				  AND last_opened < now() - $1::interval
				  AND (last_closed IS NULL OR last_closed < now() - $1::interval)
				  AND `+noLiveStream+`
				RETURNING user_id)
			SELECT presence_announce(user_id, false) FROM off`, grace)
		if err != nil {
			return err
		}
		for rows.Next() {
			offline++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		// Dead nodes' streams end now, as NodeRemove ends a node's: their
		// users go offline at a sweep a grace period later unless they
		// have opened a stream elsewhere.
		_, err = tx.Exec(ctx, `
			WITH gone AS (DELETE FROM nodes WHERE lease_until <= now())
			UPDATE presence SET last_closed = now()
			WHERE user_id IN (SELECT s.user_id FROM presence_streams s JOIN nodes n ON n.id = s.node_id
			                  WHERE n.lease_until <= now())`)
		return err
	})
	return offline, translate(err, "sweeping presence")
}

// OnlineMembers returns the online members of each of pods.
func OnlineMembers(ctx context.Context, q Querier, podIDs []string) (map[string][]string, error) {
	rows, err := q.Query(ctx, `
		SELECT m.pod_id, m.user_id FROM memberships m JOIN presence p ON p.user_id = m.user_id AND p.online
		WHERE m.pod_id = ANY($1) ORDER BY m.joined_seq`, podIDs)
	if err != nil {
		return nil, translate(err, "listing online members")
	}
	online := make(map[string][]string)
	var podID, userID string
	_, err = pgx.ForEachRow(rows, []any{&podID, &userID}, func() error {
		online[podID] = append(online[podID], userID)
		return nil
	})
	return online, translate(err, "listing online members")
}
