package rpc_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/pods-dev/pods/db/dbtest"
	"github.com/pods-dev/pods/rpc"
	podsv1 "github.com/pods-dev/pods/rpc/gen/pods/v1"
	"github.com/pods-dev/pods/rpc/gen/pods/v1/podsv1connect"
	"github.com/pods-dev/pods/stream"
)

// resumingReader follows one pod through streams that it drops at random
// moments (and that the server may end), resuming each time from its
// cursor. It checks that every seq arrives once and in order, and records
// the ids of the messages it saw.
type resumingReader struct {
	client *client
	podID  string
	cursor int64
	seen   map[string]bool // message ids
	resubs int
}

func (r *resumingReader) run(ctx context.Context, until func() int64) error {
	r.seen = make(map[string]bool)
	for {
		target := until()
		if target > 0 && r.cursor >= target {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("reader stopped at seq %d of %d: %w", r.cursor, target, ctx.Err())
		}
		if err := r.once(ctx, rand.IntN(80)+1, until); err != nil {
			return err
		}
	}
}

// once reads one stream until it has taken budget events of the pod, has
// reached the target, or the stream ends. Only a broken guarantee is an
// error. Heartbeats let it notice the target while the pod is quiet.
func (r *resumingReader) once(ctx context.Context, budget int, until func() int64) error {
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.resubs++
	s, err := r.client.Live.Subscribe(streamCtx, connect.NewRequest(&podsv1.SubscribeRequest{
		Cursors: map[string]int64{r.podID: r.cursor},
	}))
	if err != nil {
		time.Sleep(20 * time.Millisecond) // the server is down: retry
		return nil
	}
	defer s.Close()
	for budget > 0 && s.Receive() {
		if target := until(); target > 0 && r.cursor >= target {
			return nil
		}
		ev := s.Msg().Event
		if ev.PodId != r.podID || ev.Seq == 0 {
			continue
		}
		if ev.Seq != r.cursor+1 {
			return fmt.Errorf("got seq %d after %d", ev.Seq, r.cursor)
		}
		r.cursor = ev.Seq
		if m := ev.GetMessageCreated().GetMessage(); m != nil {
			r.seen[m.Id] = true
		}
		budget--
	}
	if s.Err() != nil {
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// writeAll sends n messages from each writer at once, retrying each send
// with its idempotency key until it is acknowledged, and returns the ids
// acknowledged.
func writeAll(ctx context.Context, e *env, writers []*client, podID string, n int, afterEach func(int)) ([]string, error) {
	var mu sync.Mutex
	var acked []string
	var sent atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, len(writers))
	for w, c := range writers {
		wg.Go(func() {
			for i := range n {
				req := &podsv1.SendMessageRequest{PodId: podID, IdempotencyKey: fmt.Sprintf("w%d-%d", w, i), Body: fmt.Sprintf("writer %d says %d", w, i)}
				for {
					res, err := c.Chat.SendMessage(ctx, connect.NewRequest(req))
					if err == nil {
						mu.Lock()
						acked = append(acked, res.Msg.Message.Id)
						mu.Unlock()
						break
					}
					if ctx.Err() != nil {
						errs <- err
						return
					}
					time.Sleep(20 * time.Millisecond) // e.g. the database restarts
				}
				afterEach(int(sent.Add(1)))
			}
		})
	}
	wg.Wait()
	close(errs)
	return acked, <-errs
}

func lastSeq(t *testing.T, e *env, podID string) int64 {
	t.Helper()
	var seq int64
	for range 100 {
		err := e.db.Pool.QueryRow(context.Background(), `SELECT last_seq FROM pods WHERE id = $1`, podID).Scan(&seq)
		if err == nil {
			return seq
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("cannot read last_seq")
	return 0
}

// stressPod runs 4 writers and 3 resuming readers on one pod, calling
// disrupt once a third of the messages are acknowledged, and checks that
// every reader saw every seq once and in order, including every
// acknowledged message.
func stressPod(t *testing.T, e *env, perWriter int, disrupt func()) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	owner := e.signUp()
	pod := e.createPod(owner, 6)
	writers := []*client{e.as(owner)}
	for range 3 {
		w := e.signUp()
		e.join(w, pod)
		writers = append(writers, w)
	}
	readers := make([]*resumingReader, 3)
	joined := lastSeq(t, e, pod.Id) // a stream carries nothing from before its user's join
	var target atomic.Int64
	var wg sync.WaitGroup
	readErrs := make([]error, len(readers))
	for i := range readers {
		readers[i] = &resumingReader{client: e.as(writers[i]), podID: pod.Id, cursor: joined}
		wg.Go(func() { readErrs[i] = readers[i].run(ctx, target.Load) })
	}
	total := perWriter * len(writers)
	var once sync.Once
	acked, err := writeAll(ctx, e, writers, pod.Id, perWriter, func(sent int) {
		if sent >= total/3 {
			once.Do(disrupt)
		}
	})
	if err != nil {
		t.Fatalf("writing: %v", err)
	}
	target.Store(lastSeq(t, e, pod.Id))
	wg.Wait()
	for i, r := range readers {
		if readErrs[i] != nil {
			t.Fatalf("reader %d: %v", i, readErrs[i])
		}
		for _, id := range acked {
			if !r.seen[id] {
				t.Fatalf("reader %d never saw acknowledged message %s", i, id)
			}
		}
		t.Logf("reader %d: %d events over %d streams", i, r.cursor, r.resubs)
	}
	if len(acked) != total {
		t.Fatalf("%d acknowledged, want %d", len(acked), total)
	}
}

func TestStreamsStayExactWhileReadersResumeAndTheListenerDies(t *testing.T) {
	t.Parallel()
	for _, source := range sources {
		t.Run(source, func(t *testing.T) {
			t.Parallel()
			node := "stress-" + source + "-" + fmt.Sprint(time.Now().UnixNano())
			e := newEnvOn(t, dbtest.New(t), rpc.Config{}, stream.Config{
				ProbeInterval: time.Second, Heartbeat: 100 * time.Millisecond, ChangeSource: source, NodeID: node,
			})
			stressPod(t, e, 150, func() {
				// The listener, and the replication connection if any.
				want := map[string]int{stream.SourceNotify: 1, stream.SourceWAL: 2}[source]
				var killed int
				err := e.db.Pool.QueryRow(context.Background(), `
					SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
					WHERE application_name IN ('pods listen ' || $1, 'pods wal ' || $1)`, node).Scan(&killed)
				if err != nil || killed != want {
					t.Errorf("killing the change source: %d killed, want %d, %v", killed, want, err)
				}
			})
		})
	}
}

func TestStreamsRecoverFromADatabaseRestart(t *testing.T) {
	t.Parallel()
	for _, source := range sources {
		t.Run(source, func(t *testing.T) {
			t.Parallel()
			testStreamsRecoverFromADatabaseRestart(t, source)
		})
	}
}

func testStreamsRecoverFromADatabaseRestart(t *testing.T, source string) {
	cluster, d := dbtest.NewCluster(t)
	e := newEnvOn(t, d, rpc.Config{}, stream.Config{ProbeInterval: time.Second, Heartbeat: 100 * time.Millisecond, ChangeSource: source})
	stressPod(t, e, 60, func() {
		ctx := context.Background()
		if err := cluster.Stop(ctx); err != nil {
			t.Errorf("stopping postgres: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
		if err := cluster.Start(ctx); err != nil {
			t.Errorf("starting postgres: %v", err)
		}
	})
}

func TestSlowConsumerIsCutOffWithoutDelayingOthers(t *testing.T) {
	t.Parallel()
	e := newEnvOn(t, dbtest.New(t), rpc.Config{}, stream.Config{QueueSize: 4})
	owner, slowUser := e.signUp(), e.signUp()
	pod := e.createPod(owner, 4)
	e.join(slowUser, pod)

	// The slow client's connection buffers little, and it never reads.
	transport := &http.Transport{Protocols: h2cOnly(), HTTP2: &http.HTTP2Config{
		MaxReceiveBufferPerStream: 64 << 10, MaxReceiveBufferPerConnection: 64 << 10,
	}}
	defer transport.CloseIdleConnections()
	slow := podsv1connect.NewRealtimeServiceClient(&http.Client{Transport: bearer{token: &slowUser.token, next: transport}}, e.url)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stuck, err := slow.Subscribe(ctx, connect.NewRequest(&podsv1.SubscribeRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if !stuck.Receive() || stuck.Msg().Event.GetReady() == nil {
		t.Fatalf("no ready: %v", stuck.Err())
	}
	start := stuck.Msg().Event.GetReady().Pods[0].LastSeq

	fast := e.subscribe(owner, nil)
	fast.ready()
	const n = 300
	for i := range n {
		e.send(owner, pod.Id, fmt.Sprint(i), incompressible(3000))
		if ev := fast.nextLogged(); ev.GetMessageCreated() == nil {
			t.Fatalf("fast reader got %v", ev)
		}
	}

	// The stuck stream was cut off: reading it now drains what was in
	// flight, then fails.
	time.AfterFunc(10*time.Second, cancel) // rather than hang if it was not
	cursor := start
	for stuck.Receive() {
		if ev := stuck.Msg().Event; ev.Seq > 0 {
			cursor = ev.Seq
		}
	}
	if stuck.Err() == nil {
		t.Fatal("the stuck stream was not cut off")
	}
	var ce *connect.Error
	if errors.As(stuck.Err(), &ce) {
		t.Logf("cut off after seq %d with %v", cursor, ce.Code())
	}
	stuck.Close()
	if cursor >= start+n {
		t.Fatalf("the stuck stream received everything (%d); nothing was tested", cursor)
	}
	if cut := e.metrics()["pods_stream_slow_consumers_total"]; cut != 1 {
		t.Fatalf("%v slow consumers counted, want 1", cut)
	}
	// Resuming from its cursor loses nothing.
	resumed := e.subscribe(slowUser, map[string]int64{pod.Id: cursor})
	resumed.ready()
	for want := cursor + 1; want <= start+n; want++ {
		if ev := resumed.next(); ev.Seq != want {
			t.Fatalf("resumed: got seq %d, want %d", ev.Seq, want)
		}
	}
}

// incompressible returns n random characters, which gzip cannot shrink
// much, so that they fill flow-control windows.
func incompressible(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('!' + rand.IntN(94))
	}
	return string(b)
}
