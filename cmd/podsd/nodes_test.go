package main_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/pods-dev/pods/db/dbtest"
	podsv1 "github.com/pods-dev/pods/rpc/gen/pods/v1"
)

// TestNodes runs real podsd processes, two at a time on one database, with
// each change source. podsd is built once for all of them.
//
//	TestNodes/<source>/TwoNodes       both nodes serve the same pods alike
//	TestNodes/<source>/KillUnderLoad  one node dies (SIGKILL) under load
func TestNodes(t *testing.T) {
	bin := buildPodsd(t)
	for _, source := range []string{"notify", "wal"} {
		t.Run(source, func(t *testing.T) {
			t.Parallel()
			t.Run("TwoNodes", func(t *testing.T) {
				t.Parallel()
				testTwoNodes(t, bin, source)
			})
			t.Run("KillUnderLoad", func(t *testing.T) {
				t.Parallel()
				testKillUnderLoad(t, bin, source)
			})
		})
	}
	t.Run("StartTogetherOnANewDatabase", func(t *testing.T) {
		t.Parallel()
		testStartTogether(t, bin)
	})
	t.Run("WALAnyNodeID", func(t *testing.T) {
		t.Parallel()
		testWALAnyNodeID(t, bin)
	})
}

// testStartTogether starts three nodes at once on an empty database: they
// take turns migrating it, and all serve.
func testStartTogether(t *testing.T, bin string) {
	d := dbtest.New(t)
	name := fmt.Sprintf("fresh_%d", nodeCount.Add(1))
	if _, err := d.Pool.Exec(t.Context(), "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	dep := &deployment{t: t, bin: bin, dbURL: d.URL + " dbname=" + name, source: "notify", prefix: name}
	var wg sync.WaitGroup
	for _, n := range []string{"a", "b", "c"} {
		wg.Go(func() {
			if _, err := dep.tryStart(n); err != nil {
				t.Errorf("node %s: %v", n, err)
			}
		})
	}
	wg.Wait()
}

// testWALAnyNodeID checks live delivery with the wal source for node ids
// that are not valid slot names, and for one id used on two databases of
// the same server (replication slots belong to the server).
func testWALAnyNodeID(t *testing.T, bin string) {
	var nodes []*node
	for _, prefix := range []string{"Web.1", "same", "same"} {
		dep, _ := newDeployment(t, bin, "wal")
		dep.prefix = prefix
		nodes = append(nodes, dep.start("a"))
	}
	for _, n := range nodes {
		u := signUp(t, n, "usr")
		pod := createPod(t, u, n)
		w := subscribe(t, u, n, map[string]int64{pod.Id: 0})
		w.ready()
		last := lastSeq(t, u, n, pod.Id)
		w.waitSeq(pod.Id, last, 5*time.Second)
		send(t, u, n, pod.Id, "k", "hello")
		w.waitSeq(pod.Id, last+1, 5*time.Second)
	}
}

// testTwoNodes checks that a stream on either node gets every event of its
// pods whichever node took the write, that an idempotency key holds across
// nodes, and that both nodes agree on presence.
func testTwoNodes(t *testing.T, bin, source string) {
	dep, d := newDeployment(t, bin, source)
	a, b := dep.start("a"), dep.start("b")

	owner, ann, bob, cat := signUp(t, a, "owner"), signUp(t, b, "ann"), signUp(t, a, "bob"), signUp(t, b, "cat")
	pod := createPod(t, owner, a)
	join(t, ann, b, pod)
	join(t, bob, a, pod)
	// Every stream starts after the last join: a stream carries nothing
	// from before its user's join.
	joined := lastSeq(t, owner, a, pod.Id)
	from0 := map[string]int64{pod.Id: joined}

	// Presence crosses nodes: ann, on b, sees the owner who is on a, and
	// the owner hears ann come online.
	ownerA := subscribe(t, owner, a, from0)
	ownerA.ready()
	annB := subscribe(t, ann, b, from0)
	if online := onlineIn(t, annB.ready(), pod.Id); !slices.Contains(online, owner.id) {
		t.Errorf("ready on b: online %v, want the owner (streaming on a) among them", online)
	}
	ownerA.waitFrom(0, 10*time.Second, "ann online (on a, ann streams on b)", isPresence(ann.id, true))
	// bob streams on both nodes.
	bobA, bobB := subscribe(t, bob, a, from0), subscribe(t, bob, b, from0)
	bobA.ready()
	bobB.ready()
	ownerA.waitFrom(0, 10*time.Second, "bob online on a", isPresence(bob.id, true))
	annB.waitFrom(0, 10*time.Second, "bob online on b", isPresence(bob.id, true))
	checkPresenceAgrees(t, owner, a, b, pod.Id, owner.id, ann.id, bob.id)

	// Writes through either node.
	m1 := send(t, owner, a, pod.Id, "k1", "hello from a")
	m2 := send(t, ann, b, pod.Id, "k2", "hello from b")
	ctx, cancel := callCtx(t)
	defer cancel()
	if _, err := owner.on(b).Chat.EditMessage(ctx, connect.NewRequest(&podsv1.EditMessageRequest{MessageId: m1.Id, Body: "hello from a, edited on b"})); err != nil {
		t.Fatalf("edit on b: %v", err)
	}
	if _, err := bob.on(a).Chat.AddReaction(ctx, connect.NewRequest(&podsv1.AddReactionRequest{MessageId: m2.Id, Emoji: "👍"})); err != nil {
		t.Fatalf("react on a: %v", err)
	}
	join(t, cat, b, pod)
	if _, err := cat.on(a).Pod.LeavePod(ctx, connect.NewRequest(&podsv1.LeavePodRequest{PodId: pod.Id})); err != nil {
		t.Fatalf("leave on a: %v", err)
	}

	// One idempotency key, sent concurrently to both nodes, several times
	// each: one message.
	var wg sync.WaitGroup
	ids := make(chan string, 8)
	for i := range 8 {
		n := []*node{a, b}[i%2]
		wg.Go(func() {
			ctx, cancel := callCtx(t)
			defer cancel()
			res, err := owner.on(n).Chat.SendMessage(ctx, connect.NewRequest(&podsv1.SendMessageRequest{
				PodId: pod.Id, IdempotencyKey: "same-key", Body: "said once",
			}))
			if err != nil {
				t.Errorf("send with the same key on node %s: %v", n.name, err)
				return
			}
			ids <- res.Msg.Message.Id
		})
	}
	wg.Wait()
	close(ids)
	var dupID string
	for id := range ids {
		if dupID != "" && id != dupID {
			t.Errorf("the same key gave messages %s and %s", dupID, id)
		}
		dupID = id
	}
	// The same key with another body, on the other node: already_exists.
	_, err := owner.on(b).Chat.SendMessage(ctx, connect.NewRequest(&podsv1.SendMessageRequest{
		PodId: pod.Id, IdempotencyKey: "same-key", Body: "said twice?",
	}))
	if codeOf(err) != connect.CodeAlreadyExists {
		t.Errorf("same key, other body: got %v, want already_exists", err)
	}
	var rows int
	if err := d.Pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE author_id = $1 AND idempotency_key = 'same-key'`, owner.id).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Errorf("%d messages stored for one idempotency key, want 1", rows)
	}

	// Both nodes report the same last seq, and every stream on either node
	// delivers the log up to it, the same events in the same order.
	last := lastSeq(t, owner, a, pod.Id)
	if lb := lastSeq(t, ann, b, pod.Id); lb != last {
		t.Errorf("last seq: %d on a, %d on b", last, lb)
	}
	watches := []*watch{ownerA, annB, bobA, bobB}
	var want []string
	for _, w := range watches {
		w.waitSeq(pod.Id, last, 20*time.Second)
		evs := w.checkLog(pod.Id, joined, last)[:last-joined]
		got := make([]string, len(evs))
		created := 0
		for i, ev := range evs {
			got[i] = describe(ev)
			if ev.GetMessageCreated().GetMessage().GetId() == dupID {
				created++
			}
		}
		if created != 1 {
			t.Errorf("%s: the message sent with one key to both nodes was created %d times", w.name, created)
		}
		if want == nil {
			want = got
			continue
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s delivered\n%v\nbut %s delivered\n%v", w.name, got, watches[0].name, want)
		}
	}
	for _, kind := range []string{"messageCreated", "messageEdited", "reactionAdded", "memberJoined", "memberLeft"} {
		if !slices.ContainsFunc(want, func(s string) bool { return strings.Fields(s)[1] == kind }) {
			t.Errorf("no %s event in %v", kind, want)
		}
	}

	// ann closes her only stream (on b): after the grace period both nodes
	// see her offline. bob closes his stream on a but keeps the one on b:
	// he stays online.
	markA, markB := ownerA.len(), bobB.len()
	annB.close()
	bobA.close()
	ownerA.waitFrom(markA, 15*time.Second, "ann offline on a", isPresence(ann.id, false))
	bobB.waitFrom(markB, 15*time.Second, "ann offline on b", isPresence(ann.id, false))
	// One more sweep after ann's went by: bob's open stream on b must have
	// kept him online through it.
	time.Sleep(2 * presenceGrace)
	if off := ownerA.find(isPresence(bob.id, false)); len(off) > 0 {
		t.Errorf("bob went offline while his stream on b was open")
	}
	checkPresenceAgrees(t, owner, a, b, pod.Id, owner.id, bob.id)
}

// checkPresenceAgrees opens a stream of u on each node and checks that both
// ready events list exactly want online in pod.
func checkPresenceAgrees(t *testing.T, u *user, a, b *node, podID string, want ...string) {
	t.Helper()
	slices.Sort(want)
	var lists [][]string
	for _, n := range []*node{a, b} {
		w := subscribe(t, u, n, nil)
		lists = append(lists, onlineIn(t, w.ready(), podID))
		w.close()
	}
	if !slices.Equal(lists[0], want) || !slices.Equal(lists[1], want) {
		t.Errorf("online members: %v on a, %v on b, want %v on both", lists[0], lists[1], want)
	}
}

// describe names an event of the log by seq, kind and message, for
// comparing what two streams delivered.
func describe(ev *podsv1.Event) string {
	kind := strings.TrimPrefix(fmt.Sprintf("%T", ev.GetKind()), "*podsv1.Event_")
	kind = strings.ToLower(kind[:1]) + kind[1:]
	id := ev.GetMessageCreated().GetMessage().GetId() + ev.GetMessageEdited().GetMessage().GetId() +
		ev.GetReactionAdded().GetMessageId() + ev.GetMemberJoined().GetUserId() + ev.GetMemberLeft().GetUserId()
	return fmt.Sprintf("%d %s %s", ev.Seq, kind, id)
}

// Load of testKillUnderLoad.
const (
	writersPerPod   = 2
	messagesPerUser = 60
)

// testKillUnderLoad kills node a with SIGKILL while writers send through it
// and readers stream from it. Writers retry on b with the same idempotency
// key; readers resume on b with their cursors. Every acknowledged message
// must reach every reader once, in seq order, with no gap; a user whose
// only stream was on a must go offline once a's lease ends, seen on b.
func testKillUnderLoad(t *testing.T, bin, source string) {
	dep, d := newDeployment(t, bin, source)
	a, b := dep.start("a"), dep.start("b")

	// Two pods of six: two writers each, three readers (one in both pods),
	// a bystander streaming on a who will not come back, and an observer
	// streaming on b all along.
	var writers, readers []*user
	for i := range 2 * writersPerPod {
		writers = append(writers, signUp(t, b, fmt.Sprintf("writer%d-", i)))
	}
	for i := range 3 {
		readers = append(readers, signUp(t, b, fmt.Sprintf("reader%d-", i)))
	}
	bystander, observer := signUp(t, b, "bystander"), signUp(t, b, "observer")
	pods := []*podsv1.Pod{createPod(t, writers[0], b), createPod(t, writers[writersPerPod], b)}
	podOf := func(writer int) *podsv1.Pod { return pods[writer/writersPerPod] }
	for i, w := range writers {
		if w != writers[0] && w != writers[writersPerPod] {
			join(t, w, b, podOf(i))
		}
	}
	readerPods := [][]*podsv1.Pod{{pods[0], pods[1]}, {pods[0]}, {pods[1]}}
	for i, r := range readers {
		for _, p := range readerPods[i] {
			join(t, r, b, p)
		}
	}
	for _, p := range pods {
		join(t, bystander, b, p)
		join(t, observer, b, p)
	}
	// Every stream starts after the last join: a stream carries nothing
	// from before its user's join.
	from0 := make(map[string]int64)
	for _, p := range pods {
		from0[p.Id] = lastSeq(t, observer, b, p.Id)
	}

	watchB := subscribe(t, observer, b, from0)
	watchB.ready()
	gone := subscribe(t, bystander, a, from0)
	gone.ready()
	watchB.waitFrom(0, 10*time.Second, "the bystander online", isPresence(bystander.id, true))

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	readCtx, stopReading := context.WithCancel(ctx)
	var readWG, writeWG sync.WaitGroup
	defer func() { // on the way out of a failure, too
		stopReading()
		cancel()
		readWG.Wait()
		writeWG.Wait()
	}()
	rs := make([]*reader, len(readers))
	for i, u := range readers {
		r := &reader{user: u, nodes: []*node{a, b}, cursors: make(map[string]int64), seen: make(map[string]int), authors: make(map[string]string), delivered: make(map[string]map[int64]time.Time)}
		for _, p := range readerPods[i] {
			r.cursors[p.Id] = from0[p.Id]
			r.delivered[p.Id] = make(map[int64]time.Time)
		}
		rs[i] = r
		readWG.Go(func() { r.run(readCtx) })
	}
	// The readers are streaming from a before the load starts.
	for _, r := range rs {
		r.waitReady(t, 10*time.Second)
	}

	// The writers, and the kill once a third of the messages are in.
	total := len(writers) * messagesPerUser
	acks := &ackLog{byID: make(map[string]ack)}
	for i, w := range writers {
		writeWG.Go(func() { writeMessages(ctx, t, w, i, podOf(i).Id, []*node{a, b}, acks) })
	}
	for acks.count() < total/3 && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	a.kill()
	killAt := time.Now()
	writeWG.Wait()
	if t.Failed() {
		return
	}
	if n := acks.count(); n != total {
		t.Fatalf("%d messages acknowledged, want %d", n, total)
	}
	t.Logf("%s: killed node a after %d of %d acknowledgements; %d sends were retried on b, %d of them after a call whose outcome was unknown, %d of which a had committed",
		source, acks.countBefore(killAt), total, acks.retries(), acks.unknowns(), acks.countWhere(func(a ack) bool {
			return a.retried && a.msg.CreatedAt.AsTime().Before(killAt)
		}))

	// The log's ends now. The coach may add events later (the readers
	// handle those too), but none of the writers' messages.
	targets := make(map[string]int64)
	for _, p := range pods {
		var last int64
		if err := d.Pool.QueryRow(ctx, `SELECT last_seq FROM pods WHERE id = $1`, p.Id).Scan(&last); err != nil {
			t.Fatal(err)
		}
		targets[p.Id] = last
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, r := range rs {
		for !r.caughtUp(targets) {
			if err := r.failure(); err != nil || time.Now().After(deadline) {
				t.Fatalf("reader %s stopped at %v of %v: %v", r.user.name, r.position(), targets, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	// Exactly once, in order, no gap: each reader checked seq by seq that
	// the next event was the one after its cursor; here every acknowledged
	// message of its pods must be among what it got, once, and every
	// message of a writer that it got must have been acknowledged. The
	// readers keep streaming on b: they must stay online.
	acked := acks.byPod()
	isWriter := make(map[string]bool)
	for _, w := range writers {
		isWriter[w.id] = true
	}
	for i, r := range rs {
		r.mu.Lock()
		if r.resubscribes == 0 {
			t.Errorf("reader %s never resubscribed to b", r.user.name)
		}
		for id, author := range r.authors {
			if isWriter[author] && !acks.has(id) {
				t.Errorf("reader %s got message %s, which no writer had acknowledged", r.user.name, id)
			}
		}
		for _, p := range readerPods[i] {
			for id, key := range acked[p.Id] {
				if n := r.seen[id]; n != 1 {
					t.Errorf("reader %s got acknowledged message %s (key %s) %d times, want once", r.user.name, id, key, n)
				}
			}
		}
		r.mu.Unlock()
	}
	// The observer on b never had to resume: same guarantee.
	for _, p := range pods {
		watchB.waitSeq(p.Id, targets[p.Id], 10*time.Second)
		created := make(map[string]int)
		for _, ev := range watchB.checkLog(p.Id, from0[p.Id], targets[p.Id]) {
			if m := ev.GetMessageCreated().GetMessage(); m != nil {
				created[m.Id]++
			}
		}
		for id := range acked[p.Id] {
			if created[id] != 1 {
				t.Errorf("observer on b got acknowledged message %s %d times, want once", id, created[id])
			}
		}
	}
	// One row per key, whatever the retries.
	var rows, keys int
	err := d.Pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT (author_id, idempotency_key)) FROM messages WHERE author_id = ANY($1)`,
		userIDs(writers)).Scan(&rows, &keys)
	if err != nil {
		t.Fatal(err)
	}
	if rows != total || keys != total {
		t.Errorf("the writers have %d messages with %d keys stored, want %d", rows, keys, total)
	}

	// The bystander goes offline, seen on b, once a's lease has run out.
	// The readers, streaming on b, stay online through that sweep and the
	// next.
	_, offAt := watchB.waitFrom(0, time.Until(killAt.Add(45*time.Second)), "the bystander offline after the kill", isPresence(bystander.id, false))
	if offAt.Before(killAt) {
		t.Errorf("the bystander went offline %v before the kill", killAt.Sub(offAt))
	}
	time.Sleep(sweepInterval + presenceGrace/2)
	for _, r := range readers {
		if off := watchB.find(isPresence(r.id, false)); len(off) > 0 {
			t.Errorf("reader %s went offline at kill+%v, though streaming on b", r.name, off[0].at.Sub(killAt).Round(time.Millisecond))
		}
	}
	stopReading()
	readWG.Wait()
	for _, r := range rs {
		if err := r.failure(); err != nil {
			t.Errorf("reader %s: %v", r.user.name, err)
		}
	}

	// How long it took: to resubscribe, and to have again every message
	// acknowledged before the kill.
	var resubscribed, resumed time.Duration
	for _, r := range rs {
		resubscribed = max(resubscribed, r.readyOnB.Sub(killAt))
		at := r.readyOnB
		for podID, seq := range acks.lastSeqBefore(killAt) {
			if got, ok := r.delivered[podID][seq]; ok && got.After(at) {
				at = got
			}
		}
		resumed = max(resumed, at.Sub(killAt))
	}
	t.Logf("%s: kill → all %d readers resubscribed on b: %v; → every message acknowledged before the kill delivered again: %v; → bystander offline on b: %v (lease 15 s, grace %v)",
		source, len(rs), resubscribed.Round(time.Millisecond), resumed.Round(time.Millisecond), offAt.Sub(killAt).Round(time.Millisecond), presenceGrace)
}

// sweepInterval is stream.Config's default SweepInterval: how often a node
// takes users offline.
const sweepInterval = time.Second

func userIDs(us []*user) []string {
	ids := make([]string, len(us))
	for i, u := range us {
		ids[i] = u.id
	}
	return ids
}

// writeMessages sends messagesPerUser messages from w (the i-th writer) to
// pod, each with its own idempotency key, through nodes[0] until a call
// fails, then through the next node. A failed call is retried with the
// same key: it may have been committed before the node died.
func writeMessages(ctx context.Context, t *testing.T, w *user, i int, podID string, nodes []*node, acks *ackLog) {
	current := 0
	for m := range messagesPerUser {
		key, body := fmt.Sprintf("w%d-%d", i, m), fmt.Sprintf("writer %d, message %d", i, m)
		var unknown bool // a previous attempt may have been committed
		for attempt := 0; ; attempt++ {
			callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			res, err := w.on(nodes[current]).Chat.SendMessage(callCtx, connect.NewRequest(&podsv1.SendMessageRequest{
				PodId: podID, IdempotencyKey: key, Body: body,
			}))
			cancel()
			if err == nil {
				msg := res.Msg.Message
				if msg.IdempotencyKey != key || msg.Body != body || msg.AuthorId != w.id || msg.PodId != podID {
					t.Errorf("send %s got back %v", key, msg)
				}
				if err := acks.add(msg, attempt, unknown); err != nil {
					t.Error(err)
				}
				break
			}
			if ctx.Err() != nil {
				t.Errorf("writer %d: message %s not acknowledged: %v", i, key, err)
				return
			}
			// The call may have reached the node before it died.
			unknown = unknown || !isConnRefused(err)
			current = min(current+1, len(nodes)-1)
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(time.Duration(rand.IntN(8)) * time.Millisecond)
	}
}

// isConnRefused reports whether err says the call never reached a server.
func isConnRefused(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection refused")
}

// ackLog records the acknowledged messages.
type ackLog struct {
	mu   sync.Mutex
	byID map[string]ack
}

type ack struct {
	msg     *podsv1.Message
	at      time.Time
	retried bool // acknowledged after an attempt that failed
	unknown bool // ... whose outcome was unknown
}

func (l *ackLog) add(m *podsv1.Message, attempt int, unknown bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if prev, ok := l.byID[m.Id]; ok {
		return fmt.Errorf("keys %s and %s acknowledged with the same message %s", prev.msg.IdempotencyKey, m.IdempotencyKey, m.Id)
	}
	l.byID[m.Id] = ack{msg: m, at: time.Now(), retried: attempt > 0, unknown: unknown}
	return nil
}

func (l *ackLog) has(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.byID[id]
	return ok
}

func (l *ackLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.byID)
}

func (l *ackLog) countWhere(f func(ack) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, a := range l.byID {
		if f(a) {
			n++
		}
	}
	return n
}

func (l *ackLog) countBefore(t time.Time) int {
	return l.countWhere(func(a ack) bool { return a.at.Before(t) })
}
func (l *ackLog) retries() int  { return l.countWhere(func(a ack) bool { return a.retried }) }
func (l *ackLog) unknowns() int { return l.countWhere(func(a ack) bool { return a.unknown }) }

// byPod returns the acknowledged message ids of each pod, with their keys.
func (l *ackLog) byPod() map[string]map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	pods := make(map[string]map[string]string)
	for id, a := range l.byID {
		if pods[a.msg.PodId] == nil {
			pods[a.msg.PodId] = make(map[string]string)
		}
		pods[a.msg.PodId][id] = a.msg.IdempotencyKey
	}
	return pods
}

// lastSeqBefore returns, per pod, the highest seq of a message
// acknowledged before t.
func (l *ackLog) lastSeqBefore(t time.Time) map[string]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	last := make(map[string]int64)
	for _, a := range l.byID {
		if a.at.Before(t) {
			last[a.msg.PodId] = max(last[a.msg.PodId], a.msg.Seq)
		}
	}
	return last
}

// reader follows its pods on nodes[0] and, once a stream of it fails, on
// the next node, resuming from its cursors. It checks every event of the
// log against its cursor: one more, or the guarantee is broken.
type reader struct {
	user  *user
	nodes []*node

	mu           sync.Mutex
	node         int
	cursors      map[string]int64
	seen         map[string]int                 // message id → times created
	authors      map[string]string              // message id → author id
	delivered    map[string]map[int64]time.Time // pod → seq → when
	ready        bool                           // the first stream is open
	readyOnB     time.Time                      // the first ready on a later node
	resubscribes int
	err          error // a broken guarantee
}

// errBroken marks a broken delivery guarantee.
var errBroken = errors.New("delivery guarantee broken")

func (r *reader) run(ctx context.Context) {
	for ctx.Err() == nil {
		err := r.follow(ctx)
		if errors.Is(err, errBroken) {
			r.mu.Lock()
			r.err = err
			r.mu.Unlock()
			return
		}
		if ctx.Err() != nil {
			return
		}
		// The node is gone, or going: on to the next.
		r.mu.Lock()
		if r.node < len(r.nodes)-1 {
			r.node++
		}
		r.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
}

// follow reads one stream until it ends.
func (r *reader) follow(ctx context.Context) error {
	r.mu.Lock()
	n := r.nodes[r.node]
	cursors := make(map[string]int64, len(r.cursors))
	for id, seq := range r.cursors {
		cursors[id] = seq
	}
	r.mu.Unlock()
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := r.user.on(n).Live.Subscribe(streamCtx, connect.NewRequest(&podsv1.SubscribeRequest{Cursors: cursors}))
	if err != nil {
		return err
	}
	defer s.Close()
	first := true
	for s.Receive() {
		ev := s.Msg().Event
		r.mu.Lock()
		err := r.take(ev, first, n)
		r.mu.Unlock()
		if err != nil {
			return err
		}
		first = false
	}
	return s.Err()
}

// take checks and records one event. r.mu must be held.
func (r *reader) take(ev *podsv1.Event, first bool, n *node) error {
	if first {
		if ev.GetReady() == nil {
			return fmt.Errorf("%w: first event on node %s is %v, not ready", errBroken, n.name, ev)
		}
		if r.node > 0 {
			r.resubscribes++
			if r.readyOnB.IsZero() {
				r.readyOnB = time.Now()
			}
		}
		r.ready = true
		return nil
	}
	if ev.Seq == 0 {
		return nil
	}
	cursor, ok := r.cursors[ev.PodId]
	if !ok {
		return fmt.Errorf("%w: event of pod %s, not followed", errBroken, ev.PodId)
	}
	if ev.Seq != cursor+1 {
		return fmt.Errorf("%w: pod %s: seq %d after %d, on node %s", errBroken, ev.PodId, ev.Seq, cursor, n.name)
	}
	r.cursors[ev.PodId] = ev.Seq
	r.delivered[ev.PodId][ev.Seq] = time.Now()
	if m := ev.GetMessageCreated().GetMessage(); m != nil {
		r.seen[m.Id]++
		r.authors[m.Id] = m.AuthorId
		if r.seen[m.Id] > 1 {
			return fmt.Errorf("%w: message %s created twice", errBroken, m.Id)
		}
	}
	return nil
}

func (r *reader) waitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r.mu.Lock()
		ready, err := r.ready, r.err
		r.mu.Unlock()
		if ready {
			return
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("reader %s: no stream open within %v: %v", r.user.name, timeout, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *reader) caughtUp(targets map[string]int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for podID, seq := range r.cursors {
		if seq < targets[podID] {
			return false
		}
	}
	return true
}

func (r *reader) failure() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *reader) position() map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	pos := make(map[string]int64, len(r.cursors))
	for id, seq := range r.cursors {
		pos[id] = seq
	}
	return pos
}
