package db_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/pods-dev/pods/db"
	"github.com/pods-dev/pods/db/dbtest"
)

// batchFixture is two pods with two members each, and an outsider.
type batchFixture struct {
	pool               *db.Pool
	podA, podB         string
	ann, bob, outsider string
}

func newBatchFixture(t *testing.T) batchFixture {
	t.Helper()
	ctx := context.Background()
	d := dbtest.New(t)
	user := func(handle string) string {
		u, err := db.UserInsert(ctx, d.Pool, db.UserInsertParams{Handle: handle, DisplayName: handle, Timezone: "UTC", PasswordHash: "x"})
		if err != nil {
			t.Fatal(err)
		}
		return u.ID
	}
	f := batchFixture{pool: d.Pool, ann: user("ann"), bob: user("bob"), outsider: user("out")}
	pod := func(name string) string {
		p, err := db.PodCreate(ctx, d.Pool, db.PodCreateParams{Name: name, Habit: "Run", Capacity: 6, OwnerID: f.ann})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.PodJoin(ctx, d.Pool, p.InviteCode, f.bob); err != nil {
			t.Fatal(err)
		}
		return p.ID
	}
	f.podA, f.podB = pod("A"), pod("B")
	return f
}

// checkSeqs fails t unless each pod's messages have gap-free seqs, each
// with its message_created event.
func (f batchFixture) checkSeqs(t *testing.T) {
	t.Helper()
	for _, pod := range []string{f.podA, f.podB} {
		msgs, events := messageSeqs(t, f.pool, pod)
		if fmt.Sprint(msgs) != fmt.Sprint(events) {
			t.Errorf("pod %s: message seqs %v, event seqs %v", pod, msgs, events)
		}
		for i := 1; i < len(msgs); i++ {
			if msgs[i] != msgs[i-1]+1 {
				t.Errorf("pod %s: seqs %v have a gap", pod, msgs)
			}
		}
	}
}

// messageSeqs returns the seqs of a pod's messages and of its
// message_created events, in order.
func messageSeqs(t *testing.T, pool *db.Pool, podID string) (messages, events []int64) {
	t.Helper()
	ctx := context.Background()
	for _, q := range []struct {
		sql string
		out *[]int64
	}{
		{`SELECT seq FROM messages WHERE pod_id = $1 ORDER BY seq`, &messages},
		{`SELECT seq FROM events WHERE pod_id = $1 AND kind = 'message_created' ORDER BY seq`, &events},
	} {
		rows, err := pool.Query(ctx, q.sql, podID)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s int64
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			*q.out = append(*q.out, s)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return messages, events
}

func TestMessagesSendGivesEachCallItsOwnResult(t *testing.T) {
	ctx := context.Background()
	f := newBatchFixture(t)
	earlier, err := db.MessageSend(ctx, f.pool, db.MessageSendParams{PodID: f.podA, AuthorID: f.ann, IdempotencyKey: "k0", Body: "first"})
	if err != nil {
		t.Fatal(err)
	}
	calls := []db.MessageSendParams{
		{PodID: f.podB, AuthorID: f.bob, IdempotencyKey: "b1", Body: "to B"},                   // 0: new
		{PodID: f.podA, AuthorID: f.ann, IdempotencyKey: "k0", Body: "first"},                  // 1: a retry
		{PodID: f.podA, AuthorID: f.ann, IdempotencyKey: "k0", Body: "changed"},                // 2: key reused
		{PodID: f.podA, AuthorID: f.outsider, IdempotencyKey: "o1", Body: "let me in"},         // 3: not a member
		{PodID: f.podA, AuthorID: f.bob, IdempotencyKey: "b2", Body: "twice", Humor: true},     // 4: new
		{PodID: f.podA, AuthorID: f.bob, IdempotencyKey: "b2", Body: "twice", Humor: true},     // 5: same call again
		{PodID: f.podA, AuthorID: f.ann, IdempotencyKey: "k1", Body: "second"},                 // 6: new
		{PodID: "00000000-0000-0000-0000-000000000000", AuthorID: f.ann, IdempotencyKey: "k2"}, // 7: no such pod
	}
	results := db.MessagesSend(ctx, f.pool, calls, nil)

	for _, i := range []int{0, 4, 6} {
		r := results[i]
		if r.Err != nil || !r.Created || r.Message.Body != calls[i].Body || r.Message.Humor != calls[i].Humor {
			t.Errorf("call %d: got %+v, want a new message", i, r)
		}
	}
	if r := results[1]; r.Err != nil || r.Created || r.Message.ID != earlier.ID {
		t.Errorf("retry: got %+v, want the earlier message %s", r, earlier.ID)
	}
	if r := results[2]; !errors.Is(r.Err, db.ErrIdempotencyMismatch) {
		t.Errorf("reused key: got %+v, want ErrIdempotencyMismatch", r)
	}
	for _, i := range []int{3, 7} {
		if r := results[i]; !errors.Is(r.Err, db.ErrNotFound) {
			t.Errorf("call %d: got %+v, want ErrNotFound", i, r)
		}
	}
	if r := results[5]; r.Err != nil || r.Created || r.Message.ID != results[4].Message.ID {
		t.Errorf("same call twice: got %+v, want message %s once", r, results[4].Message.ID)
	}
	// In pod A: the earlier message, then Bob's and Ann's in call order,
	// with gap-free seqs that match their events.
	if results[4].Message.Seq+1 != results[6].Message.Seq {
		t.Errorf("seqs %d and %d are not in call order", results[4].Message.Seq, results[6].Message.Seq)
	}
	f.checkSeqs(t)
}

// A new message's CreatedEvent is the event its trigger wrote, as a reader
// decodes it.
func TestCreatedEventMatchesTheLog(t *testing.T) {
	ctx := context.Background()
	f := newBatchFixture(t)
	m, err := db.MessageSend(ctx, f.pool, db.MessageSendParams{PodID: f.podA, AuthorID: f.ann, IdempotencyKey: "k", Body: "Ran 5 km 🏃", Humor: true})
	if err != nil {
		t.Fatal(err)
	}
	logged, err := db.EventsAfter(ctx, f.pool, f.podA, m.Seq-1, 1)
	if err != nil || len(logged) != 1 {
		t.Fatalf("reading the log: %v, %d events", err, len(logged))
	}
	local, stored := m.CreatedEvent(), logged[0]
	var fromLocal, fromLog db.Message
	if err := errors.Join(json.Unmarshal(local.Payload, &fromLocal), json.Unmarshal(stored.Payload, &fromLog)); err != nil {
		t.Fatal(err)
	}
	local.Payload, stored.Payload = nil, nil
	for _, at := range []*time.Time{&local.CreatedAt, &stored.CreatedAt, &fromLocal.CreatedAt, &fromLog.CreatedAt} {
		*at = at.UTC()
	}
	if !reflect.DeepEqual(local, stored) || !reflect.DeepEqual(fromLocal, fromLog) {
		t.Errorf("local event %+v %+v\nlogged event %+v %+v", local, fromLocal, stored, fromLog)
	}
}

// Concurrent callers, some retrying, some using both pods: every key is
// stored once, every caller gets its message, and each pod's seqs stay
// gap-free.
func TestMessageBatcherUnderConcurrentCallers(t *testing.T) {
	ctx := context.Background()
	f := newBatchFixture(t)
	var mu sync.Mutex
	var reported []db.Message
	largest := 0 // the most messages one report held: one shared statement's
	b := db.NewMessageBatcher(f.pool, 1, 16, func(ms []db.Message, failedPods []string) {
		mu.Lock()
		reported = append(reported, ms...)
		largest = max(largest, len(ms))
		mu.Unlock()
		if len(failedPods) > 0 {
			t.Errorf("failed writes reported for pods %v", failedPods)
		}
	})
	const callers, perCaller = 12, 20
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			author := []string{f.ann, f.bob}[c%2]
			for i := range perCaller {
				p := db.MessageSendParams{PodID: []string{f.podA, f.podB}[i%2], AuthorID: author,
					IdempotencyKey: fmt.Sprintf("c%d-%d", c, i), Body: fmt.Sprintf("caller %d message %d", c, i)}
				first := b.Send(ctx, p)
				retry := b.Send(ctx, p)
				if first.Err != nil || retry.Err != nil || !first.Created || retry.Created ||
					first.Message.ID != retry.Message.ID || first.Message.Body != p.Body || first.Message.AuthorID != author {
					t.Errorf("%s: first %+v, retry %+v", p.IdempotencyKey, first, retry)
					return
				}
			}
		}()
	}
	wg.Wait()

	var stored int
	if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM messages`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != callers*perCaller {
		t.Errorf("%d messages stored, want %d", stored, callers*perCaller)
	}
	if len(reported) != 2*callers*perCaller { // every first call and retry
		t.Errorf("written reported %d messages, want %d", len(reported), 2*callers*perCaller)
	}
	if largest < 2 {
		t.Error("no two calls shared a commit")
	}
	f.checkSeqs(t)
}

// A batch that fails as a whole (another writer commits one of its keys
// while the batch waits on that key's row) falls back to one call at a
// time: each call still gets its own answer.
func TestMessagesSendFallsBackWhenTheBatchFails(t *testing.T) {
	ctx := context.Background()
	f := newBatchFixture(t)
	tx, err := f.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	taken, err := db.MessageSend(ctx, tx, db.MessageSendParams{PodID: f.podB, AuthorID: f.ann, IdempotencyKey: "taken", Body: "from elsewhere"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan []db.SendResult)
	go func() {
		done <- db.MessagesSend(ctx, f.pool, []db.MessageSendParams{
			{PodID: f.podA, AuthorID: f.bob, IdempotencyKey: "mine", Body: "hello"},
			{PodID: f.podB, AuthorID: f.ann, IdempotencyKey: "taken", Body: "from elsewhere"},
		}, nil)
	}()
	// Commit once the batch waits for the other writer's key.
	waitForLockWait(t, f.pool, `%unnest%`)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	results := <-done
	if r := results[0]; r.Err != nil || !r.Created || r.Message.Body != "hello" {
		t.Errorf("the other call: %+v", r)
	}
	if r := results[1]; r.Err != nil || r.Created || r.Message.ID != taken.ID {
		t.Errorf("the taken key: %+v, want message %s", r, taken.ID)
	}
	f.checkSeqs(t)
}

// waitForLockWait returns once a session of the test's database waits for
// a lock in a query LIKE pattern; it fails the test after 10 s.
func waitForLockWait(t *testing.T, pool *db.Pool, pattern string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for waiting := false; !waiting; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no query like %q waits for a lock", pattern)
		}
		if err := pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE $1)`, pattern).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
	}
}

// The writers own the backends of their connections while they write and
// for the notice window after, not those of other pools, of connections
// idle for longer, or of connections from before Forget.
func TestWritersKnowTheirBackends(t *testing.T) {
	ctx := context.Background()
	f := newBatchFixture(t)
	writers, err := db.OpenWriters(ctx, f.pool, 2, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer writers.Close()
	backend := func(q db.Querier) uint32 {
		t.Helper()
		var pid uint32
		if err := q.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			t.Fatal(err)
		}
		return pid
	}
	writersPool := writers.PoolForTest()
	conn, err := writersPool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	writing := backend(conn)
	if !writers.Owns(writing) {
		t.Errorf("the writers do not own their writing connection's backend %d", writing)
	}
	writers.SetNoticeWindowForTest(time.Hour)
	conn.Release()
	if !writers.Owns(writing) {
		t.Errorf("the writers do not own their connection's backend %d just after its release", writing)
	}
	if other := backend(f.pool); writers.Owns(other) {
		t.Errorf("the writers own another pool's backend %d", other)
	}
	writers.SetNoticeWindowForTest(0) // pgxpool records the release in the background
	for deadline := time.Now().Add(10 * time.Second); writers.Owns(writing); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the writers own the idle connection's backend %d", writing)
		}
	}

	writers.SetNoticeWindowForTest(time.Hour)
	if !writers.Owns(backend(writersPool)) {
		t.Fatal("the writers do not own their connection's backend after a query")
	}
	writers.Forget()
	if writers.Owns(writing) {
		t.Errorf("the writers own the backend %d from before Forget", writing)
	}
	if renewed := backend(writersPool); renewed == writing || !writers.Owns(renewed) {
		t.Errorf("after Forget: backend %d (before: %d), owned %v; want a new connection, owned", renewed, writing, writers.Owns(renewed))
	}
}

// When calls of a batch fall back to one at a time, what the shared
// statement stored is reported at once, and each fallback call's outcome
// when it is known: here the fallback waits for a lock that another
// transaction holds on the retried message's pod.
func TestMessagesSendReportsTheSharedStatementEarly(t *testing.T) {
	ctx := context.Background()
	f := newBatchFixture(t)
	retry := db.MessageSendParams{PodID: f.podB, AuthorID: f.ann, IdempotencyKey: "old", Body: "sent before"}
	old, err := db.MessageSend(ctx, f.pool, retry)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := f.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT 1 FROM pods WHERE id = $1 FOR UPDATE`, f.podB); err != nil {
		t.Fatal(err)
	}
	early := make(chan []db.Message, 2)
	done := make(chan []db.SendResult)
	go func() {
		done <- db.MessagesSend(ctx, f.pool, []db.MessageSendParams{
			{PodID: f.podA, AuthorID: f.ann, IdempotencyKey: "new", Body: "hello"}, retry,
		}, func(ms []db.Message, _ []string) { early <- ms })
	}()
	select {
	case ms := <-early:
		if len(ms) != 1 || ms[0].Body != "hello" {
			t.Errorf("reported early: %+v, want the new message", ms)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the shared statement's message was not reported while the fallback waits")
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	results := <-done
	if r := results[0]; r.Err != nil || !r.Created || r.Message.Body != "hello" {
		t.Errorf("the new message: %+v", r)
	}
	if r := results[1]; r.Err != nil || r.Created || r.Message.ID != old.ID {
		t.Errorf("the retry: %+v, want message %s", r, old.ID)
	}
	select {
	case ms := <-early:
		if len(ms) != 1 || ms[0].ID != old.ID {
			t.Errorf("reported after the fallback: %+v, want the retried message", ms)
		}
	default:
		t.Error("the fallback call's outcome was not reported")
	}
}

// At each Forget (the listener connected) the writers open their
// connections at once, each warmed up with a message sent alone and in a
// batch, in a transaction that keeps nothing.
func TestWritersWarmUpTheirConnectionsAndKeepNothing(t *testing.T) {
	ctx := context.Background()
	d := dbtest.New(t)
	counts := func() (rows string) {
		t.Helper()
		if err := d.Pool.QueryRow(ctx, `SELECT format('%s users, %s pods, %s members, %s messages, %s events',
			(SELECT count(*) FROM users), (SELECT count(*) FROM pods), (SELECT count(*) FROM memberships),
			(SELECT count(*) FROM messages), (SELECT count(*) FROM events))`).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		return rows
	}
	messagesSize := func() (size int64) {
		t.Helper()
		if err := d.Pool.QueryRow(ctx, `SELECT pg_relation_size('messages')`).Scan(&size); err != nil {
			t.Fatal(err)
		}
		return size
	}
	before := counts()
	if size := messagesSize(); size != 0 {
		t.Fatalf("a new database's messages take %d bytes", size)
	}

	conn, err := d.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = db.WarmUpForTest(ctx, conn)
	conn.Release()
	if err != nil {
		t.Fatalf("warm-up: %v", err)
	}
	// Rows rolled back take space all the same.
	if messagesSize() == 0 {
		t.Error("the warm-up inserted no message")
	}

	writers, err := db.OpenWriters(ctx, d.Pool, 2, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer writers.Close()
	for round := 1; round <= 2; round++ {
		writers.Forget()
		waitForWriters(t, writers, int64(2*round))
	}
	if after := counts(); after != before {
		t.Errorf("the warm-up kept rows: %s before, %s after", before, after)
	}
}

// Forgets in a row, while the connections of the first are still being
// opened (their warm-ups wait for a lock), leave the writers with as many
// new connections.
func TestWritersRefillAfterForgetsInARow(t *testing.T) {
	ctx := context.Background()
	d := dbtest.New(t)
	writers, err := db.OpenWriters(ctx, d.Pool, 2, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer writers.Close()
	lock, err := d.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(ctx) //nolint:errcheck
	if _, err := lock.Exec(ctx, `LOCK TABLE users IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	writers.Forget()
	stat := writers.PoolForTest().Stat
	for deadline := time.Now().Add(10 * time.Second); stat().ConstructingConns() < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections being opened; want 2", stat().ConstructingConns())
		}
	}
	writers.Forget()
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	waitForWriters(t, writers, 4)
}

// waitForWriters waits until the writers' pool has opened opened
// connections in all and holds two, ready.
func waitForWriters(t *testing.T, writers *db.Writers, opened int64) {
	t.Helper()
	stat := writers.PoolForTest().Stat
	for deadline := time.Now().Add(10 * time.Second); stat().IdleConns() != 2 || stat().TotalConns() != 2 || stat().NewConnsCount() < opened; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the writers' pool has opened %d connections, holds %d, %d ready; want %d opened, 2 held, ready",
				stat().NewConnsCount(), stat().TotalConns(), stat().IdleConns(), opened)
		}
	}
}
