package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pods-dev/pods/db"
	"github.com/pods-dev/pods/db/dbtest"
)

func TestWriteHorizon(t *testing.T) {
	t.Parallel()
	d := dbtest.New(t)
	ctx := context.Background()
	horizon := func(q db.Querier, slack time.Duration) time.Time {
		t.Helper()
		h, err := db.WriteHorizon(ctx, q, slack)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	open, err := d.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Rollback(ctx)
	var started time.Time
	if err := open.QueryRow(ctx, `SELECT now()`).Scan(&started); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)

	if h := horizon(d.Pool, time.Hour); !h.Equal(started) {
		t.Errorf("horizon %v with a transaction open since %v", h, started)
	}
	if h := horizon(d.Pool, 10*time.Millisecond); !h.After(started) {
		t.Errorf("horizon %v: held back beyond the slack by a transaction open since %v", h, started)
	}

	// A role that cannot see the open transaction gets the slack.
	role := "horizon_" + time.Now().Format("150405.000000")
	role = pgx.Identifier{role}.Sanitize()
	if _, err := d.Pool.Exec(ctx, `CREATE ROLE `+role+` LOGIN`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Pool.Exec(context.Background(), `DROP ROLE `+role) })
	cfg, err := pgx.ParseConfig(d.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.User = role[1 : len(role)-1]
	limited, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer limited.Close(ctx)
	var now time.Time
	if err := limited.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
		t.Fatal(err)
	}
	if h := horizon(limited, time.Hour); h.Sub(now) > time.Second-time.Hour || h.After(started) {
		t.Errorf("horizon %v for a role blind to other sessions, want an hour before %v", h, now)
	}

	if err := open.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if h := horizon(d.Pool, time.Hour); !h.After(started.Add(50 * time.Millisecond)) {
		t.Errorf("horizon %v after the transaction open since %v ended", h, started)
	}

	// A session that does not report its activity gets the slack too.
	untracked, err := pgx.Connect(ctx, d.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer untracked.Close(ctx)
	if _, err := untracked.Exec(ctx, `SET track_activities = off`); err != nil {
		t.Fatal(err)
	}
	if err := d.Pool.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
		t.Fatal(err)
	}
	if h := horizon(d.Pool, time.Hour); h.Sub(now) > time.Second-time.Hour {
		t.Errorf("horizon %v with a session not tracked, want an hour before %v", h, now)
	}
}

// TestSaveScoresLeavesPodRowAlone: saving a score takes no lock on the
// pod's row, which every message of the pod updates; a lock there made the
// row's writers look up multixacts.
func TestSaveScoresLeavesPodRowAlone(t *testing.T) {
	t.Parallel()
	f := newBatchFixture(t)
	ctx := context.Background()
	sent := db.MessagesSend(ctx, f.pool, []db.MessageSendParams{{PodID: f.podA, AuthorID: f.ann, IdempotencyKey: "k1", Body: "hi"}})
	if sent[0].Err != nil {
		t.Fatal(sent[0].Err)
	}
	m := sent[0].Message
	holder, err := f.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx)
	if _, err := holder.Exec(ctx, `SELECT 1 FROM pods WHERE id = $1 FOR UPDATE`, f.podA); err != nil {
		t.Fatal(err)
	}
	tx, err := f.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '2s'`); err != nil {
		t.Fatal(err)
	}
	err = db.SaveScores(ctx, tx, []db.UnscoredMessage{{ID: m.ID, PodID: m.PodID, Body: m.Body, CreatedAt: m.CreatedAt}},
		[]db.MessageScore{{Compound: -0.5, Hostility: 0.7, Hostile: true}})
	if err != nil {
		t.Fatalf("saving a score while the pod's row is locked: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}
