package rpc_test

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	"github.com/pods-dev/pods/db"
	"github.com/pods-dev/pods/db/dbtest"
	"github.com/pods-dev/pods/rpc"
	"github.com/pods-dev/pods/rpc/convert"
	podsv1 "github.com/pods-dev/pods/rpc/gen/pods/v1"
	"github.com/pods-dev/pods/stream"
)

// sources are the change sources every delivery test runs with.
var sources = []string{stream.SourceNotify, stream.SourceWAL}

func TestSubscribeReadyThenCatchUpThenLive(t *testing.T) {
	t.Parallel()
	for _, source := range sources {
		t.Run(source, func(t *testing.T) {
			t.Parallel()
			testSubscribeReadyThenCatchUpThenLive(t, source)
		})
	}
}

func testSubscribeReadyThenCatchUpThenLive(t *testing.T, source string) {
	e := newEnvOn(t, dbtest.New(t), rpc.Config{}, stream.Config{Heartbeat: time.Second, ChangeSource: source})
	owner, member := e.signUp(), e.signUp()
	pod := e.createPod(owner, 4) // seqs 1, 2: the owner and the coach joined
	e.join(member, pod)          // seq 3
	for _, body := range []string{"one", "two", "three"} {
		e.send(owner, pod.Id, body, body) // seqs 4, 5, 6
	}

	s := e.subscribe(member, map[string]int64{pod.Id: 4})
	ready := s.ready()
	if ready.HeartbeatSeconds != 1 || len(ready.Pods) != 1 {
		t.Fatalf("ready: %v", ready)
	}
	if p := ready.Pods[0]; p.LastSeq != 6 || p.UnreadCount != 3 || len(p.Pod.Members) != 3 {
		t.Fatalf("ready pod: %v", p)
	}
	for _, want := range []string{"two", "three"} {
		ev := s.next()
		if m := ev.GetMessageCreated().GetMessage(); m.GetBody() != want || ev.PodId != pod.Id {
			t.Fatalf("catch-up: got %v, want %q", ev, want)
		}
	}
	sent := e.send(owner, pod.Id, "live-key", "live")
	ev := s.next()
	m := ev.GetMessageCreated().GetMessage()
	if ev.Seq != 7 || m.GetId() != sent.Id || m.GetIdempotencyKey() != "live-key" || m.GetAuthorId() != owner.user.Id {
		t.Fatalf("live: %v", ev)
	}

	// Without a cursor a pod starts after ready's lastSeq.
	fresh := e.subscribe(owner, nil)
	if got := fresh.ready().Pods[0].LastSeq; got != 7 {
		t.Fatalf("lastSeq %d, want 7", got)
	}
	e.send(member, pod.Id, "k", "hello")
	if ev := fresh.nextLogged(); ev.Seq != 8 {
		t.Fatalf("after ready: %v", ev)
	}

	// Heartbeats come at the announced interval, one after another.
	deadline := time.After(5 * time.Second)
	for heartbeats := 0; heartbeats < 2; {
		select {
		case ev := <-fresh.events:
			if ev.GetHeartbeat() != nil {
				heartbeats++
			}
		case <-deadline:
			t.Fatalf("%d heartbeats in 5 s, at 1 s intervals", heartbeats)
		}
	}
}

func TestSubscribeRefusesBadCursors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	c := e.signUp()
	for _, cursors := range []map[string]int64{{"not-a-uuid": 1}, {"00000000-0000-0000-0000-000000000001": -1}} {
		stream, err := c.Live.Subscribe(context.Background(), connect.NewRequest(&podsv1.SubscribeRequest{Cursors: cursors}))
		if err == nil {
			for stream.Receive() {
			}
			err = stream.Err()
			stream.Close()
		}
		wantCode(t, err, connect.CodeInvalidArgument)
	}
	anon := e.anonymous()
	stream, err := anon.Live.Subscribe(context.Background(), connect.NewRequest(&podsv1.SubscribeRequest{}))
	if err == nil {
		for stream.Receive() {
		}
		err = stream.Err()
		stream.Close()
	}
	wantCode(t, err, connect.CodeUnauthenticated)
}

// A client gone while its stream is being set up ends it quietly, and
// leaves nothing registered.
func TestAStreamWhoseClientLeftDuringSetUpEndsQuietly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	c := e.signUp()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := e.hub.Serve(ctx, stream.Request{UserID: c.user.Id, Send: func(*podsv1.Event) error { return nil }})
	if err != nil {
		t.Fatalf("got %v, want nil for a client gone", err)
	}
	if open := e.metrics()["pods_stream_open_streams"]; open != 0 {
		t.Fatalf("%v streams open", open)
	}
}

// A pod joined while a stream starts, between its read of the memberships
// and its read of the pods for ready, is in ready and live on the stream.
func TestAPodJoinedWhileAStreamStartsIsLive(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	ctx := context.Background()
	owner, ana := e.signUp(), e.signUp()
	e.createPod(ana, 4)
	joined := e.createPod(owner, 4)
	// The pods' read for ready counts unread messages: it waits here.
	tx, err := e.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `LOCK TABLE messages IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	opened := make(chan *sub, 1)
	go func() {
		s, err := e.openSub(ana, nil) // returns with the response's headers, after the lock
		if err != nil {
			t.Error(err)
		}
		opened <- s
	}()
	for waiting := false; !waiting; time.Sleep(5 * time.Millisecond) {
		if err := e.db.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%FROM messages x%')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
	}
	e.join(ana, joined)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	s := <-opened
	if s == nil {
		t.FailNow()
	}
	if pods := s.ready().GetPods(); len(pods) != 2 {
		t.Fatalf("ready lists %d pods, want both", len(pods))
	}
	e.send(owner, joined.Id, "k", "welcome, Ana")
	if got := s.nextLogged().GetMessageCreated().GetMessage().GetBody(); got != "welcome, Ana" {
		t.Fatalf("got %q", got)
	}
}

func TestStreamFollowsJoinLeaveAndDelete(t *testing.T) {
	t.Parallel()
	for _, source := range sources {
		t.Run(source, func(t *testing.T) {
			t.Parallel()
			testStreamFollowsJoinLeaveAndDelete(t, source)
		})
	}
}

func testStreamFollowsJoinLeaveAndDelete(t *testing.T, source string) {
	e := newEnvOn(t, dbtest.New(t), rpc.Config{}, stream.Config{ChangeSource: source})
	ctx := context.Background()
	owner, joiner := e.signUp(), e.signUp()
	pod := e.createPod(owner, 4)
	other := e.createPod(owner, 4)

	ownerStream := e.subscribe(owner, nil)
	ownerStream.ready()
	joinerStream := e.subscribe(joiner, nil)
	if r := joinerStream.ready(); len(r.Pods) != 0 {
		t.Fatalf("ready before joining: %v", r)
	}

	// Joining adds the pod to the open stream, from the joiner's own event
	// (with presence events, which this test skips).
	e.join(joiner, pod)
	for _, s := range []*sub{joinerStream, ownerStream} {
		ev := s.nextNotPresence()
		if j := ev.GetMemberJoined(); j == nil || j.UserId != joiner.user.Id || j.Member.GetUser().GetHandle() != joiner.user.Handle || ev.PodId != pod.Id {
			t.Fatalf("after join: %v", ev)
		}
	}
	e.send(owner, pod.Id, "k1", "welcome")
	if m := joinerStream.nextNotPresence().GetMessageCreated(); m.GetMessage().GetBody() != "welcome" {
		t.Fatalf("joiner got %v", m)
	}
	ownerStream.nextNotPresence()

	// Leaving ends the pod's part of the stream after the memberLeft event.
	if _, err := joiner.Pod.LeavePod(ctx, connect.NewRequest(&podsv1.LeavePodRequest{PodId: pod.Id})); err != nil {
		t.Fatal(err)
	}
	if ev := joinerStream.nextNotPresence(); ev.GetMemberLeft().GetUserId() != joiner.user.Id {
		t.Fatalf("after leaving: %v", ev)
	}
	ownerStream.nextNotPresence()
	e.send(owner, pod.Id, "k2", "after you left")
	ownerStream.nextNotPresence()
	joinerStream.quiet(300 * time.Millisecond)

	// Deletion: every member's stream hears podDeleted, and nothing after.
	e.join(joiner, other)
	joinerStream.nextNotPresence()
	ownerStream.nextNotPresence()
	if _, err := owner.Pod.DeletePod(ctx, connect.NewRequest(&podsv1.DeletePodRequest{PodId: other.Id})); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*sub{joinerStream, ownerStream} {
		if ev := s.nextNotPresence(); ev.GetPodDeleted() == nil || ev.PodId != other.Id || ev.Seq != 0 {
			t.Fatalf("after delete: %v", ev)
		}
	}
	joinerStream.quiet(300 * time.Millisecond)
	// The owner's stream still carries the first pod.
	e.send(owner, pod.Id, "k3", "still here")
	if ev := ownerStream.nextNotPresence(); ev.PodId != pod.Id {
		t.Fatalf("got %v", ev)
	}
}

// Leaving a pod and joining it again keeps the pod on the stream: live,
// where the memberLeft may reach the stream after a refresh already saw the
// new membership, and when resuming from a cursor before the leave, where
// the catch-up crosses the leave and the join (found by a review: the pod
// went silent, or the stream failed on a "gap").
func TestLeavingAndJoiningAgainKeepsThePodOnTheStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	owner, member := e.signUp(), e.signUp()
	pod := e.createPod(owner, 4)
	e.join(member, pod)

	live := e.subscribe(member, nil)
	live.ready()
	var last *podsv1.Message
	for i := range 20 {
		e.leave(member, pod.Id)
		e.join(member, pod)
		last = e.send(owner, pod.Id, fmt.Sprintf("live-%d", i), "still here?")
		for live.nextLogged().GetMessageCreated().GetMessage().GetId() != last.Id {
		}
	}
	live.close()

	e.leave(member, pod.Id)                  // last.Seq + 1
	e.join(member, pod)                      // + 2
	e.send(owner, pod.Id, "resumed", "back") // + 3
	resumed := e.subscribe(member, map[string]int64{pod.Id: last.Seq})
	resumed.ready()
	for want := last.Seq + 1; want <= last.Seq+3; want++ {
		if ev := resumed.nextLogged(); ev.Seq != want || ev.PodId != pod.Id {
			t.Fatalf("resumed stream: got %v, want seq %d", ev, want)
		}
	}
	m := e.send(owner, pod.Id, "after", "and live")
	if ev := resumed.nextLogged(); ev.GetMessageCreated().GetMessage().GetId() != m.Id {
		t.Fatalf("resumed stream: got %v, want the new message", ev)
	}
}

// A stream never carries what happened in a pod while the user was not in
// it, whatever the cursor (found by review: a cursor below the user's join
// replayed the pod's history from before it, and one at the user's own
// memberLeft what happened while they were away).
func TestACursorFromBeforeTheMembershipSkipsWhatTheUserWasNotIn(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	ana, dan, eve := e.signUp(), e.signUp(), e.signUp()
	pod := e.createPod(ana, 6)
	e.join(dan, pod)
	e.send(ana, pod.Id, "k1", "before anyone left")
	e.leave(dan, pod.Id)
	danLeft := lastSeq(t, e, pod.Id)
	e.join(eve, pod)
	eveJoined := lastSeq(t, e, pod.Id)
	e.send(ana, pod.Id, "k2", "while dan was away")
	e.join(dan, pod)
	danJoined := lastSeq(t, e, pod.Id)
	e.send(ana, pod.Id, "k3", "with everyone")

	for _, tc := range []struct {
		name   string
		who    *client
		cursor int64
		want   []int64 // the first seqs of the pod on the stream
	}{
		{"a new member from 0", eve, 0, []int64{eveJoined, eveJoined + 1}},
		{"a member back, from their memberLeft", dan, danLeft, []int64{danJoined, danJoined + 1}},
		{"a member back, from inside their first membership", dan, danLeft - 1, []int64{danLeft, danJoined, danJoined + 1}},
		{"a member back, from before their first join", dan, 1, []int64{danJoined, danJoined + 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := e.subscribe(e.as(tc.who), map[string]int64{pod.Id: tc.cursor})
			s.ready()
			for _, want := range tc.want {
				if ev := s.nextLogged(); ev.Seq != want {
					t.Fatalf("got seq %d (%v), want %d", ev.Seq, ev, want)
				}
			}
			s.close()
		})
	}
}

// The sending node delivers its messages at once and in seq order, also
// when another node's message came first: here the events trigger
// notifies nothing at all, so the node's own reads of the log fill the gap.
func TestTheSendingNodeDeliversAtOnceAndInOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	ctx := context.Background()
	alice, bob := e.signUp(), e.signUp()
	pod := e.createPod(alice, 6)
	e.join(bob, pod)
	s := e.subscribe(bob, nil)
	s.ready()
	if _, err := e.db.Pool.Exec(ctx, `ALTER TABLE events DISABLE TRIGGER events_notify`); err != nil {
		t.Fatal(err)
	}

	sent := e.send(alice, pod.Id, "k1", "sent here")
	got := s.nextLogged()
	logged, err := db.EventsAfter(ctx, e.db.Pool, pod.Id, sent.Seq-1, 1)
	if err != nil {
		t.Fatal(err)
	}
	want, err := convert.Event(logged[0])
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}

	// Another node writes, then this one: its event must not overtake.
	if _, err := db.MessageSend(ctx, e.db.Pool, db.MessageSendParams{PodID: pod.Id, AuthorID: bob.user.Id, IdempotencyKey: "elsewhere", Body: "from another node"}); err != nil {
		t.Fatal(err)
	}
	e.send(alice, pod.Id, "k2", "sent here again")
	for i, body := range []string{"from another node", "sent here again"} {
		ev := s.nextLogged()
		if ev.Seq != sent.Seq+1+int64(i) || ev.GetMessageCreated().GetMessage().GetBody() != body {
			t.Fatalf("event %d: got %v, want %q at seq %d", i, ev, body, sent.Seq+1+int64(i))
		}
	}
}

// A node reads the log for the messages other nodes write, not for its
// own: it skips its writers' notifications, which other nodes hear.
func TestANodeReadsTheLogOnlyForOthersMessages(t *testing.T) {
	t.Parallel()
	d := dbtest.New(t)
	node1 := newEnvOn(t, d, rpc.Config{}, stream.Config{})
	node2 := newEnvOn(t, d, rpc.Config{}, stream.Config{})
	alice := node1.signUp()
	pod := node1.createPod(alice, 6)
	on1, on2 := node1.subscribe(alice, nil), node2.subscribe(node2.as(alice), nil)
	on1.ready()
	on2.ready()
	// Wait for node 1's reads to settle (its listener's first connect
	// reads every tracked pod).
	reads := func() float64 { return node1.metrics()["pods_stream_log_reads_total"] }
	before := -1.0
	eventually(t, func() bool {
		last := before
		time.Sleep(200 * time.Millisecond)
		before = reads()
		return before == last
	})

	for i := range 10 {
		sent := node1.send(alice, pod.Id, fmt.Sprintf("k%d", i), "from node 1")
		for _, s := range []*sub{on1, on2} {
			if ev := s.nextLogged(); ev.Seq != sent.Seq {
				t.Fatalf("got %v, want the message at seq %d", ev, sent.Seq)
			}
		}
	}
	on1.quiet(200 * time.Millisecond)
	if after := reads(); after != before {
		t.Errorf("node 1 read the log %v times for its own messages", after-before)
	}

	sent := node2.send(node2.as(alice), pod.Id, "k-node2", "from node 2")
	for _, s := range []*sub{on1, on2} {
		if ev := s.nextLogged(); ev.Seq != sent.Seq {
			t.Fatalf("got %v, want node 2's message at seq %d", ev, sent.Seq)
		}
	}
	if reads() == before {
		t.Error("node 1 did not read the log for node 2's message")
	}
}

// A node started with the other change source than a live node of the same
// database refuses to start: switching the events trigger would stop the
// live node's deliveries. A node holds its lease from Prepare on, so this
// holds for nodes starting together too.
func TestNodesMustShareTheChangeSource(t *testing.T) {
	t.Parallel()
	for _, first := range sources {
		t.Run(first, func(t *testing.T) {
			t.Parallel()
			d := dbtest.New(t)
			ctx := context.Background()
			prepare := func(source, nodeID string) error {
				return stream.NewHub(stream.Config{Pool: d.Pool, ChangeSource: source, NodeID: nodeID}).Prepare(ctx)
			}
			other := stream.SourceWAL
			if first == stream.SourceWAL {
				other = stream.SourceNotify
			}
			if err := prepare(first, "first"); err != nil {
				t.Fatal(err)
			}
			if err := prepare(other, "second"); !errors.Is(err, db.ErrChangeSourceInUse) {
				t.Fatalf("second node with %s: %v, want ErrChangeSourceInUse", other, err)
			}
			if err := prepare(first, "third"); err != nil {
				t.Fatalf("a node with the same source: %v", err)
			}
		})
	}
}

// A commit can reach the replication stream before other sessions see it
// (here a synchronous standby that never answers holds it; in production
// it is the moment between the WAL flush and the commit becoming visible,
// or a standby's round trip). A stream that starts watching the pod on
// this node in that moment reads the pod's position without the commit;
// with the wal source the node reads again until it has it (it dropped
// the announcement of a pod nobody here watched), less often the longer it
// waits. With "watched", another stream of the pod is open already.
func TestWALCommitVisibleLateReachesANewStream(t *testing.T) {
	for _, watched := range []bool{true, false} {
		t.Run(fmt.Sprintf("watched=%v", watched), func(t *testing.T) {
			t.Parallel()
			_, d := dbtest.NewCluster(t)
			ctx := context.Background()
			e := newEnvOn(t, d, rpc.Config{}, stream.Config{ChangeSource: stream.SourceWAL})
			alice := e.signUp()
			pod := e.createPod(alice, 4)
			if watched {
				e.subscribe(e.as(alice), nil).ready()
			}
			var before int64
			if err := d.Pool.QueryRow(ctx, `SELECT last_seq FROM pods WHERE id = $1`, pod.Id).Scan(&before); err != nil {
				t.Fatal(err)
			}
			// Every session commits locally but the writer below, which
			// waits for a standby that does not exist.
			e.exec(`ALTER SYSTEM SET synchronous_commit = 'local'`)
			e.exec(`ALTER SYSTEM SET synchronous_standby_names = 'nobody'`)
			e.exec(`SELECT pg_reload_conf()`)
			time.Sleep(300 * time.Millisecond)
			w, err := pgx.Connect(ctx, d.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close(ctx)
			if _, err := w.Exec(ctx, `SET synchronous_commit = on`); err != nil {
				t.Fatal(err)
			}
			var pid int
			if err := w.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
				t.Fatal(err)
			}
			inserted := make(chan error, 1)
			go func() {
				_, err := w.Exec(ctx, `INSERT INTO messages (pod_id, author_id, idempotency_key, body)
					VALUES ($1, $2, 'late', 'committed, not yet visible')`, pod.Id, alice.user.Id)
				inserted <- err
			}()
			time.Sleep(time.Second) // the commit is on the replication stream

			s := e.subscribe(alice, map[string]int64{pod.Id: before})
			if got := s.ready().Pods[0].LastSeq; got != before {
				t.Fatalf("ready's last seq %d, want %d: the commit is visible already", got, before)
			}
			// While the commit stays invisible, the node reads the pod
			// again less and less often (every millisecond, it was
			// thousands of reads in 2 s).
			const reads = "pods_stream_log_reads_total"
			first := e.metrics()[reads]
			time.Sleep(2 * time.Second)
			if n := e.metrics()[reads] - first; n > 100 {
				t.Fatalf("%v reads of the log in 2 s for a commit not visible yet, want at most 100", n)
			}
			e.exec(`SELECT pg_cancel_backend($1)`, pid) // the commit becomes visible
			if err := <-inserted; err != nil {
				t.Fatalf("insert: %v", err)
			}
			deadline := time.After(5 * time.Second)
			for {
				select {
				case ev := <-s.events:
					if ev.Seq == before+1 {
						return
					}
				case <-deadline:
					t.Fatalf("event %d is committed and visible but never reached the stream", before+1)
				}
			}
		})
	}
}

// A replication connection that goes silent (here its walsender is
// stopped; a lost host or network does the same, while writes still go
// into buffers) is taken for dead after twice the probe interval and
// replaced by a new one with a slot of its own, while the silent walsender
// still holds the old slot (as it does until wal_sender_timeout); live
// events flow then.
func TestASilentReplicationConnectionIsReplaced(t *testing.T) {
	t.Parallel()
	_, d := dbtest.NewCluster(t) // creating the new slot waits for every open transaction of the server
	nodeID := fmt.Sprintf("silent-%d", time.Now().UnixNano())
	e := newEnvOn(t, d, rpc.Config{}, stream.Config{ChangeSource: stream.SourceWAL, NodeID: nodeID, ProbeInterval: 200 * time.Millisecond})
	e.waitReplicating("at start", true)
	var pid int
	if err := d.Pool.QueryRow(context.Background(), `SELECT pid FROM pg_stat_activity
		WHERE backend_type = 'walsender' AND application_name = $1`, "pods wal "+nodeID).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(pid, syscall.SIGCONT) //nolint:errcheck
	e.waitReplicating("the walsender stopped", false)
	e.waitReplicating("a new replication connection while the old walsender holds its slot", true)

	alice := e.signUp()
	pod := e.createPod(alice, 4)
	s := e.subscribe(alice, nil)
	s.ready()
	// Written past this node's writers: it comes through replication.
	e.exec(`INSERT INTO messages (pod_id, author_id, idempotency_key, body) VALUES ($1, $2, 'k', 'by hand')`, pod.Id, alice.user.Id)
	for deadline := time.After(5 * time.Second); ; {
		select {
		case ev := <-s.events:
			if ev.GetMessageCreated().GetMessage().GetBody() == "by hand" {
				return
			}
		case <-deadline:
			t.Fatal("no live event after the replication connection was replaced")
		}
	}
}

// A replication connection that fails right after it starts (here the
// publication is gone, so the next change fails to decode) is tried again
// with a growing wait, not every 50 ms, and each try is counted.
func TestARepeatingReplicationErrorBacksOff(t *testing.T) {
	t.Parallel()
	_, d := dbtest.NewCluster(t) // each try creates a slot, which waits for every open transaction of the server
	e := newEnvOn(t, d, rpc.Config{}, stream.Config{ChangeSource: stream.SourceWAL})
	alice := e.signUp()
	pod := e.createPod(alice, 4)
	e.exec(`DROP PUBLICATION ` + db.EventsPublication)
	for i, end := 0, time.Now().Add(3*time.Second); time.Now().Before(end); i++ {
		e.exec(`INSERT INTO messages (pod_id, author_id, idempotency_key, body) VALUES ($1, $2, $3, 'by hand')`,
			pod.Id, alice.user.Id, fmt.Sprintf("k%d", i))
		time.Sleep(10 * time.Millisecond)
	}
	// 50 ms doubling (with jitter down to half) fits at most 8 tries in
	// 3 s; retried every 50 ms it would be dozens.
	n := e.metrics()[`pods_stream_reconnects_total{connection="wal"}`]
	if n < 2 || n > 8 {
		t.Fatalf("%v replication reconnects in 3 s of a repeating error, want 2 to 8", n)
	}
}

// While the connection that tells a node of new events cannot be opened,
// the node reads its pods every second: a message written past it still
// reaches its streams. With wal, the replication connection was killed and
// creating its new slot waits for a transaction left open on the server;
// with notify, the LISTEN connection was killed and the database refuses
// new connections (as when max_connections is reached).
func TestEventsFlowWhileTheChangeSourceIsDown(t *testing.T) {
	for _, source := range []string{stream.SourceNotify, stream.SourceWAL} {
		t.Run(source, func(t *testing.T) {
			t.Parallel()
			cluster, d := dbtest.NewCluster(t) // an open transaction would hold up other tests' slots
			ctx := context.Background()
			nodeID := fmt.Sprintf("blocked-%d", time.Now().UnixNano())
			e := newEnvOn(t, d, rpc.Config{}, stream.Config{ChangeSource: source, NodeID: nodeID})
			alice := e.signUp()
			pod := e.createPod(alice, 4)
			s := e.subscribe(alice, nil)
			s.ready()

			if source == stream.SourceWAL {
				e.waitReplicating("at start", true)
				open, err := pgx.Connect(ctx, d.URL)
				if err != nil {
					t.Fatal(err)
				}
				defer open.Close(ctx)
				tx, err := open.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Rollback(ctx) //nolint:errcheck
				if _, err := tx.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
					t.Fatal(err)
				}
				e.exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
					WHERE backend_type = 'walsender' AND application_name = $1`, "pods wal "+nodeID)
				e.waitReplicating("the walsender terminated", false)
			} else {
				var name string
				if err := d.Pool.QueryRow(ctx, `SELECT current_database()`).Scan(&name); err != nil {
					t.Fatal(err)
				}
				admin, err := pgx.Connect(ctx, cluster.ConnString("postgres"))
				if err != nil {
					t.Fatal(err)
				}
				defer admin.Close(ctx)
				allow := func(ok bool) {
					if _, err := admin.Exec(ctx, fmt.Sprintf(`ALTER DATABASE %q ALLOW_CONNECTIONS %v`, name, ok)); err != nil {
						t.Fatal(err)
					}
				}
				allow(false)
				defer allow(true)
				e.exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, "pods listen "+nodeID)
				for deadline := time.Now().Add(15 * time.Second); e.metrics()[`pods_stream_reconnects_total{connection="listen"}`] < 2; time.Sleep(20 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatal("the listener did not fail to reconnect within 15 s")
					}
				}
			}

			e.exec(`INSERT INTO messages (pod_id, author_id, idempotency_key, body) VALUES ($1, $2, 'k', 'past the node')`, pod.Id, alice.user.Id)
			for deadline := time.After(5 * time.Second); ; {
				select {
				case ev := <-s.events:
					if ev.GetMessageCreated().GetMessage().GetBody() != "past the node" {
						continue
					}
					if source == stream.SourceWAL && e.replicating() {
						t.Fatal("the new slot was created while a transaction was open: the event may have come by replication")
					}
					return
				case <-deadline:
					t.Fatal("no event within 5 s while the change source was down")
				}
			}
		})
	}
}

// replicating says whether the node's replication connection is up, as its
// WAL lag metric (present only then) shows.
func (e *env) replicating() bool {
	_, ok := e.metrics()["pods_stream_wal_lag_bytes"]
	return ok
}

// waitReplicating waits up to 15 s until replicating is want.
func (e *env) waitReplicating(what string, want bool) {
	e.t.Helper()
	for deadline := time.Now().Add(15 * time.Second); e.replicating() != want; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: still replicating %v after 15 s", what, !want)
		}
	}
}
