package db_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/pods-dev/pods/db"
	"github.com/pods-dev/pods/db/dbtest"
)

// TestPresenceSweep sets presence rows up as they are some time after
// streams opened and closed (times relative to now(), so that no test
// waits), with a grace period of a minute.
func TestPresenceSweep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := dbtest.New(t)
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := d.Pool.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	exec(`INSERT INTO nodes (id, lease_until) VALUES ('live', now() + interval '1 hour'), ('dead', now() - interval '1 second')`)
	// user makes an online user whose last stream opened opened ago and
	// closed closed ago ("": never), with streams on the given nodes.
	user := func(handle, opened, closed string, nodes ...string) string {
		t.Helper()
		u, err := db.UserInsert(ctx, d.Pool, db.UserInsertParams{Handle: handle, DisplayName: handle, Timezone: "UTC", PasswordHash: "x"})
		if err != nil {
			t.Fatal(err)
		}
		var closedAgo any // NULL: never closed
		if closed != "" {
			closedAgo = closed
		}
		exec(`INSERT INTO presence (user_id, online, last_opened, last_closed)
		      VALUES ($1, true, now() - $2::interval, now() - $3::interval)`, u.ID, opened, closedAgo)
		for _, node := range nodes {
			exec(`INSERT INTO presence_streams (node_id, stream_id, user_id) VALUES ($1, gen_random_uuid(), $2)`, node, u.ID)
		}
		return u.ID
	}
	gone := user("gone", "1 hour", "5 minutes")
	justClosed := user("just_closed", "1 hour", "1 second")
	otherDevice := user("other_device", "1 hour", "5 minutes", "live")
	neverClosed := user("never_closed", "1 hour", "", "live")
	onDeadNode := user("on_dead_node", "1 hour", "", "dead")
	// A row left online with no stream and no close recorded, which no
	// path of Pods writes: only the full sweep looks at it.
	stale := user("stale", "1 hour", "")

	online := func() map[string]bool {
		t.Helper()
		rows, err := d.Pool.Query(ctx, `SELECT user_id::text FROM presence WHERE online`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		on := make(map[string]bool)
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			on[id] = true
		}
		return on
	}
	sweep := func(full bool, wantOffline int) {
		t.Helper()
		n, err := db.PresenceSweep(ctx, d.Pool, time.Minute, full)
		if err != nil {
			t.Fatal(err)
		}
		if n != wantOffline {
			t.Errorf("the sweep took %d offline, want %d", n, wantOffline)
		}
	}

	sweep(false, 1)
	on := online()
	if on[gone] {
		t.Error("a user whose stream closed past the grace period is online")
	}
	for name, id := range map[string]string{"just_closed": justClosed, "other_device": otherDevice,
		"never_closed": neverClosed, "on_dead_node": onDeadNode, "stale": stale} {
		if !on[id] {
			t.Errorf("%s went offline", name)
		}
	}
	var deadNodes, deadStreams int
	if err := d.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM nodes WHERE id = 'dead'),
		(SELECT count(*) FROM presence_streams WHERE node_id = 'dead')`).Scan(&deadNodes, &deadStreams); err != nil {
		t.Fatal(err)
	}
	if deadNodes != 0 || deadStreams != 0 {
		t.Errorf("%d dead nodes and %d of their streams left", deadNodes, deadStreams)
	}

	// The dead node's streams ended at that sweep: a grace period later,
	// their user goes offline.
	exec(`UPDATE presence SET last_closed = last_closed - interval '2 minutes' WHERE user_id = $1`, onDeadNode)
	sweep(false, 1)
	if online()[onDeadNode] {
		t.Error("the dead node's user is online a grace period after its sweep")
	}

	sweep(true, 1)
	on = online()
	if on[stale] {
		t.Error("the full sweep left a user with no stream online")
	}
	if !on[justClosed] || !on[otherDevice] || !on[neverClosed] {
		t.Error("the full sweep took a user offline within the grace period or with a live stream")
	}
}

// BenchmarkPresenceSweep measures a sweep with nothing to do among 5,000
// online users, each with a stream on a live node, of whom 50 have another
// device's stream closed: the targeted sweep every second, and the full one.
func BenchmarkPresenceSweep(b *testing.B) {
	ctx := context.Background()
	d := dbtest.New(b)
	_, err := d.Pool.Exec(ctx, `
		WITH n AS (INSERT INTO nodes (id, lease_until) VALUES ('live', now() + interval '1 day')),
		u AS (INSERT INTO users (handle, display_name, timezone, password_hash)
		      SELECT 'user' || i, 'User', 'UTC', 'x' FROM generate_series(1, 5000) i RETURNING id, handle),
		s AS (INSERT INTO presence_streams (node_id, stream_id, user_id) SELECT 'live', gen_random_uuid(), id FROM u)
		INSERT INTO presence (user_id, online, last_opened, last_closed)
		SELECT id, true, now() - interval '1 hour',
		       CASE WHEN handle LIKE '%00' THEN now() - interval '1 minute' END FROM u`)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := d.Pool.Exec(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}
	for _, full := range []bool{false, true} {
		b.Run("full="+strconv.FormatBool(full), func(b *testing.B) {
			for b.Loop() {
				if n, err := db.PresenceSweep(ctx, d.Pool, time.Second, full); err != nil || n != 0 {
					b.Fatal(n, err)
				}
			}
		})
	}
}
