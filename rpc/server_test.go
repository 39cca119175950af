package rpc_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/pods-dev/pods/rpc"
	podsv1 "github.com/pods-dev/pods/rpc/gen/pods/v1"
)

func TestShutdownEndsStreamsRefusesNewOnesAndFinishesWrites(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	ctx := context.Background()
	owner, member := e.signUp(), e.signUp()
	pod := e.createPod(owner, 4)
	e.join(member, pod)
	s := e.subscribe(member, nil)
	s.ready()

	// A write in flight: it waits for the pod's row, which the test holds.
	tx, err := e.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT FROM pods WHERE id = $1 FOR UPDATE`, pod.Id); err != nil {
		t.Fatal(err)
	}
	written := make(chan error, 1)
	go func() {
		_, err := owner.Chat.SendMessage(ctx, connect.NewRequest(&podsv1.SendMessageRequest{
			PodId: pod.Id, IdempotencyKey: "in-flight", Body: "sent during the drain",
		}))
		written <- err
	}()
	e.waitForLockWaiter()

	drained := make(chan error, 1)
	go func() { drained <- e.api.Shutdown(ctx, e.srv) }()

	// The open stream ends at once with unavailable, after nothing more.
	select {
	case err := <-s.err:
		wantCode(t, err, connect.CodeUnavailable)
		if !strings.Contains(err.Error(), "shutting down") {
			t.Fatalf("stream ended with %v, want a shutdown message", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end within 10s")
	}
	for len(s.events) > 0 {
		if ev := <-s.events; ev.GetHeartbeat() == nil {
			t.Fatalf("the ending stream sent %v", ev)
		}
	}
	// New streams are refused, on a new connection as on the member's.
	wantCode(t, e.subscribeErr(e.as(member), nil), connect.CodeUnavailable)
	wantCode(t, e.subscribeErr(member, nil), connect.CodeUnavailable)

	// The drain waits for the write, which then completes.
	select {
	case err := <-drained:
		t.Fatalf("Shutdown returned %v with a write in flight", err)
	case err := <-written:
		t.Fatalf("the write returned %v while blocked", err)
	default:
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-written; err != nil {
		t.Fatalf("the write in flight failed: %v", err)
	}
	if n := e.count(`SELECT count(*) FROM messages WHERE idempotency_key = 'in-flight'`); n != 1 {
		t.Fatalf("%d messages written, want 1", n)
	}
	select {
	case err := <-drained:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return within 10s of the last call")
	}
}

// waitForLockWaiter waits until a session of the test's database waits
// for a lock.
func (e *env) waitForLockWaiter() {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for e.count(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`) == 0 {
		if time.Now().After(deadline) {
			e.t.Fatal("no session waits for a lock after 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
