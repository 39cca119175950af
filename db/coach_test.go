package db_test

import (
	"context"
	"fmt"
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

// TestSaveScoresLeavesPodAndMessageRowsAlone: saving a score takes no
// lock on the pod's row, which every message of the pod updates (a lock
// there made the row's writers look up multixacts), nor on the message's
// (the scorer saves a second's scores in one statement).
func TestSaveScoresLeavesPodAndMessageRowsAlone(t *testing.T) {
	t.Parallel()
	for _, locked := range []string{"pods", "messages"} {
		t.Run(locked, func(t *testing.T) {
			t.Parallel()
			f := newBatchFixture(t)
			ctx := context.Background()
			m := sendOne(t, f, f.podA, "k1")
			holder, err := f.pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer holder.Rollback(ctx)
			id := map[string]string{"pods": m.PodID, "messages": m.ID}[locked]
			if _, err := holder.Exec(ctx, `SELECT 1 FROM `+locked+` WHERE id = $1 FOR UPDATE`, id); err != nil {
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
			if err := saveScore(ctx, tx, m); err != nil {
				t.Fatalf("saving a score while the %s row is locked: %v", locked, err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestDeletingAMessageDeletesItsScore: scores have no foreign key to their
// message; a trigger deletes them, also when the pod's deletion deletes
// the message.
func TestDeletingAMessageDeletesItsScore(t *testing.T) {
	t.Parallel()
	f := newBatchFixture(t)
	ctx := context.Background()
	deleted, kept, inDeletedPod := sendOne(t, f, f.podA, "k1"), sendOne(t, f, f.podA, "k2"), sendOne(t, f, f.podB, "k3")
	for _, m := range []db.Message{deleted, kept, inDeletedPod} {
		if err := saveScore(ctx, f.pool, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.MessageDelete(ctx, f.pool, deleted.ID, f.ann); err != nil {
		t.Fatal(err)
	}
	if err := db.PodDelete(ctx, f.pool, f.podB, f.ann); err != nil {
		t.Fatal(err)
	}
	var scored []string
	rows, err := f.pool.Query(ctx, `SELECT message_id::text FROM message_scores`)
	if err == nil {
		scored, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(scored) != 1 || scored[0] != kept.ID {
		t.Fatalf("scores of %v after deleting a message and a pod, want only %s's", scored, kept.ID)
	}
}

// sendOne stores a message of ann's in pod.
func sendOne(t *testing.T, f batchFixture, pod, key string) db.Message {
	t.Helper()
	sent := db.MessagesSend(context.Background(), f.pool, []db.MessageSendParams{{PodID: pod, AuthorID: f.ann, IdempotencyKey: key, Body: "hi"}}, nil)
	if sent[0].Err != nil {
		t.Fatal(sent[0].Err)
	}
	return sent[0].Message
}

// saveScore saves a hostile score for m.
func saveScore(ctx context.Context, q db.Querier, m db.Message) error {
	return db.SaveScores(ctx, q, []db.UnscoredMessage{{ID: m.ID, PodID: m.PodID, Body: m.Body, CreatedAt: m.CreatedAt}},
		[]db.MessageScore{{Compound: -0.5, Hostility: 0.7, Hostile: true}})
}

// TestCoachScansSkipJobsQueuedAlready: the scheduler scans for due
// reminders and quiet pods every few seconds; a member reminded today, or a
// pod nudged for its quiet spell, costs a scan a lookup of the job's key,
// not an insert that conflicts, which would also take a job id.
func TestCoachScansSkipJobsQueuedAlready(t *testing.T) {
	t.Parallel()
	f := newBatchFixture(t) // ann and bob in pods A and B, all in UTC
	ctx := context.Background()
	if _, err := f.pool.Exec(ctx, `UPDATE memberships SET reminder_time = '08:00', joined_at = '2026-01-01'`); err != nil {
		t.Fatal(err)
	}
	lastJobID := func() int64 {
		t.Helper()
		var id int64
		if err := f.pool.QueryRow(ctx, `SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM coach_jobs_id_seq`).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	reminders := func(at time.Time) (int64, error) { return db.EnqueueReminderJobs(ctx, f.pool, at) }
	quiet := func(at time.Time) (int64, error) { return db.EnqueueQuietJobs(ctx, f.pool, at, time.Hour) }
	morning := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
	later := time.Now().Add(2 * time.Hour) // both pods quiet since they were made
	for _, scan := range []struct {
		name  string
		run   func(time.Time) (int64, error)
		at    time.Time
		want  int64
		setUp func()
	}{
		{"reminders", reminders, morning, 4, nil},
		{"reminders again", reminders, morning.Add(time.Hour), 0, nil}, // reminded today already
		{"reminders the next day", reminders, morning.Add(24 * time.Hour), 4, nil},
		{"quiet pods", quiet, later, 2, nil},
		{"quiet pods again", quiet, later.Add(time.Minute), 0, nil}, // the same spells
		{"a new quiet spell", quiet, later.Add(3 * time.Hour), 1, func() { sendOne(t, f, f.podA, "spoke") }},
	} {
		if scan.setUp != nil {
			scan.setUp()
		}
		before := lastJobID()
		n, err := scan.run(scan.at)
		if err != nil || n != scan.want {
			t.Fatalf("%s: queued %d jobs (%v), want %d", scan.name, n, err, scan.want)
		}
		if taken := lastJobID() - before; taken != n {
			t.Errorf("%s: queued %d jobs and took %d job ids", scan.name, n, taken)
		}
	}
}

// TestPruneCoachJobsKeepsWhatAScanCouldQueueAgain: done jobs older than the
// cut-off go, unless their key could come back (a quiet spell still
// going on); jobs not done, or newer, stay.
func TestPruneCoachJobsKeepsWhatAScanCouldQueueAgain(t *testing.T) {
	t.Parallel()
	f := newBatchFixture(t)
	ctx := context.Background()
	sendOne(t, f, f.podA, "spoke") // pod A's spoke_seq moves past its quiet job's
	var spokeA, spokeB int64
	if err := f.pool.QueryRow(ctx, `SELECT (SELECT spoke_seq FROM pods WHERE id = $1), (SELECT spoke_seq FROM pods WHERE id = $2)`,
		f.podA, f.podB).Scan(&spokeA, &spokeB); err != nil {
		t.Fatal(err)
	}
	old, recent := time.Now().Add(-30*24*time.Hour), time.Now()
	jobs := []struct {
		key, pod, kind string
		runAt          time.Time
		done, pruned   bool
	}{
		{"reminder:old", f.podA, "reminder", old, true, true},
		{"reminder:recent", f.podA, "reminder", recent, true, false},
		{"reminder:old-not-done", f.podA, "reminder", old, false, false},
		{"conflict:old", f.podB, "conflict", old, true, true},
		{fmt.Sprintf("quiet:%s:%d", f.podA, spokeA-1), f.podA, "quiet", old, true, true}, // the pod spoke since
		{fmt.Sprintf("quiet:%s:%d", f.podB, spokeB), f.podB, "quiet", old, true, false},  // still quiet
	}
	for _, j := range jobs {
		if _, err := f.pool.Exec(ctx, `INSERT INTO coach_jobs (key, pod_id, kind, run_at, done_at)
			VALUES ($1, $2, $3, $4::timestamptz, CASE WHEN $5 THEN $4::timestamptz END)`, j.key, j.pod, j.kind, j.runAt, j.done); err != nil {
			t.Fatal(err)
		}
	}
	n, err := db.PruneCoachJobs(ctx, f.pool, time.Now().Add(-7*24*time.Hour), 100)
	if err != nil || n != 3 {
		t.Fatalf("pruned %d (%v), want 3", n, err)
	}
	for _, j := range jobs {
		var left bool
		if err := f.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM coach_jobs WHERE key = $1)`, j.key).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left == j.pruned {
			t.Errorf("%s: still there %v, want %v", j.key, left, !j.pruned)
		}
	}
}

// A member who joins after their reminder time is reminded from the next
// day on, not at once.
func TestRemindersStartAtTheFirstReminderTimeAfterTheJoin(t *testing.T) {
	t.Parallel()
	f := newBatchFixture(t) // ann and bob in pods A and B, all in UTC
	ctx := context.Background()
	joined := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
	if _, err := f.pool.Exec(ctx, `UPDATE memberships SET reminder_time = '08:00', joined_at = $1`, joined); err != nil {
		t.Fatal(err)
	}
	for _, scan := range []struct {
		at   time.Time
		want int64
	}{
		{joined.Add(time.Hour), 0},                     // past 08:00, but they joined at 09:00
		{joined.Add(23*time.Hour + 30*time.Minute), 4}, // 08:30 the next day
	} {
		n, err := db.EnqueueReminderJobs(ctx, f.pool, scan.at)
		if err != nil {
			t.Fatal(err)
		}
		if n != scan.want {
			t.Errorf("at %s: %d reminders, want %d", scan.at.Format(time.RFC3339), n, scan.want)
		}
	}
}
