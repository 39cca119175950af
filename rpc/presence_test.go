package rpc_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/pods-dev/pods/db/dbtest"
	"github.com/pods-dev/pods/rpc"
	podsv1 "github.com/pods-dev/pods/rpc/gen/pods/v1"
	"github.com/pods-dev/pods/stream"
)

// fastPresence makes presence quick enough to test.
var fastPresence = stream.Config{PresenceGrace: 500 * time.Millisecond, SweepInterval: 50 * time.Millisecond}

// nextPresence returns the next presence event, skipping others.
func (s *sub) nextPresence() *podsv1.Presence {
	s.t.Helper()
	for {
		if p := s.next().GetPresence(); p != nil {
			return p
		}
	}
}

func TestPresenceWithGracePeriodAndNoFlicker(t *testing.T) {
	t.Parallel()
	e := newEnvOn(t, dbtest.New(t), rpc.Config{}, fastPresence)
	ana, ben := e.signUp(), e.signUp()
	pod := e.createPod(ana, 4)
	e.join(ben, pod)

	anaStream := e.subscribe(ana, nil)
	anaStream.ready()
	benStream := e.subscribe(ben, nil)
	if p := anaStream.nextPresence(); p.UserId != ben.user.Id || !p.Online {
		t.Fatalf("ana saw %v, want ben online", p)
	}
	online := benStream.ready().Pods[0].OnlineUserIds
	if !slices.Contains(online, ana.user.Id) || !slices.Contains(online, ben.user.Id) {
		t.Fatalf("ready lists %v online, want both", online)
	}

	// A refresh within the grace period: no offline, no online.
	benStream.close()
	benStream = e.subscribe(ben, nil)
	benStream.ready()
	anaStream.quiet(1500 * time.Millisecond)

	// Closing for good: offline once the grace period is over.
	closed := time.Now()
	benStream.close()
	if p := anaStream.nextPresence(); p.UserId != ben.user.Id || p.Online {
		t.Fatalf("ana saw %v, want ben offline", p)
	}
	if waited := time.Since(closed); waited < 500*time.Millisecond {
		t.Fatalf("offline after %v, before the grace period", waited)
	}
	// The user's own presence is not sent to them.
	benStream = e.subscribe(ben, nil)
	benStream.ready()
	anaStream.nextPresence()
	benStream.quiet(300 * time.Millisecond)
}

func TestPresenceAgreesAcrossNodes(t *testing.T) {
	t.Parallel()
	d := dbtest.New(t)
	node1 := newEnvOn(t, d, rpc.Config{}, fastPresence)
	node2 := newEnvOn(t, d, rpc.Config{}, fastPresence)
	ana, ben := node1.signUp(), node1.signUp()
	pod := node1.createPod(ana, 4)
	node1.join(ben, pod)
	benOn2 := node2.as(ben)

	anaStream := node1.subscribe(ana, nil)
	anaStream.ready()
	benStream := node2.subscribe(benOn2, nil)
	if p := anaStream.nextPresence(); p.UserId != ben.user.Id || !p.Online {
		t.Fatalf("node 1 saw %v, want ben online", p)
	}
	if online := benStream.ready().Pods[0].OnlineUserIds; len(online) != 2 {
		t.Fatalf("node 2 lists %v online", online)
	}
	// Ben moves from node 2 to node 1 within the grace period: no flicker.
	benStream.close()
	node1.subscribe(ben, nil).ready()
	anaStream.quiet(1500 * time.Millisecond)
}

func TestDeadNodesUsersGoOfflineWhenItsLeaseEnds(t *testing.T) {
	t.Parallel()
	e := newEnvOn(t, dbtest.New(t), rpc.Config{}, fastPresence)
	ana, ben := e.signUp(), e.signUp()
	pod := e.createPod(ana, 4)
	e.join(ben, pod)
	anaStream := e.subscribe(ana, nil)
	anaStream.ready()

	// Ben's stream is on a node that died without a word: its lease runs
	// out in a second.
	ctx := context.Background()
	_, err := e.db.Pool.Exec(ctx, `
		WITH n AS (INSERT INTO nodes (id, lease_until) VALUES ('dead-node', now() + interval '1 second')),
		     s AS (INSERT INTO presence_streams (node_id, stream_id, user_id) VALUES ('dead-node', gen_random_uuid(), $1))
		INSERT INTO presence (user_id, online, last_opened) VALUES ($1, true, now() - interval '1 minute')`, ben.user.Id)
	if err != nil {
		t.Fatal(err)
	}
	if online := e.subscribe(ana, nil).ready().Pods[0].OnlineUserIds; len(online) != 2 {
		t.Fatalf("online before the lease ended: %v", online)
	}
	if p := anaStream.nextPresence(); p.UserId != ben.user.Id || p.Online {
		t.Fatalf("got %v, want ben offline", p)
	}
	if n := e.count(`SELECT count(*) FROM nodes WHERE id = 'dead-node'`); n != 0 {
		t.Fatal("the dead node was not swept")
	}
}

// A node that crashed and came back under its id within its lease (a fixed
// --node-id) does not keep its old streams' users online: they were
// recorded as open on a node that looks alive (found by a review: those
// users stayed online for good).
func TestANodeRestartedUnderItsIdTakesItsOldStreamsUsersOffline(t *testing.T) {
	t.Parallel()
	d := dbtest.New(t)
	e := newEnvOn(t, d, rpc.Config{}, fastPresence)
	ana, ben := e.signUp(), e.signUp()
	pod := e.createPod(ana, 4)
	e.join(ben, pod)
	anaStream := e.subscribe(ana, nil)
	anaStream.ready()
	// Ben's stream was on a node that crashed a moment ago.
	e.exec(`WITH n AS (INSERT INTO nodes (id, lease_until) VALUES ('restarted', now() + interval '1 minute')),
		     s AS (INSERT INTO presence_streams (node_id, stream_id, user_id) VALUES ('restarted', gen_random_uuid(), $1))
		INSERT INTO presence (user_id, online, last_opened) VALUES ($1, true, now() - interval '1 minute')`, ben.user.Id)
	cfg := fastPresence
	cfg.NodeID = "restarted"
	newEnvOn(t, d, rpc.Config{}, cfg)
	if p := anaStream.nextPresence(); p.UserId != ben.user.Id || p.Online {
		t.Fatalf("got %v, want ben offline", p)
	}
}

// A stream whose end failed to record (the database failed at that moment)
// has it recorded at the node's next lease renewal, and its user goes
// offline: nothing else would end the record while the node lives (found
// by a review).
func TestAStreamEndThatFailedToRecordIsRecordedLater(t *testing.T) {
	t.Parallel()
	cfg := fastPresence
	cfg.RenewInterval = 50 * time.Millisecond
	e := newEnvOn(t, dbtest.New(t), rpc.Config{}, cfg)
	ana, ben := e.signUp(), e.signUp()
	pod := e.createPod(ana, 4)
	e.join(ben, pod)
	anaStream := e.subscribe(ana, nil)
	anaStream.ready()
	benStream := e.subscribe(ben, nil)
	benStream.ready()
	if p := anaStream.nextPresence(); p.UserId != ben.user.Id || !p.Online {
		t.Fatalf("got %v, want ben online", p)
	}
	// Recording the end of ben's stream fails until the trigger goes; the
	// sequence (not rolled back) counts the attempts.
	e.exec(`CREATE SEQUENCE close_attempts`)
	e.exec(`CREATE FUNCTION refuse_close() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN PERFORM nextval('close_attempts'); RAISE EXCEPTION 'the database is not there'; END $$`)
	e.exec(`CREATE TRIGGER refuse_close BEFORE DELETE ON presence_streams FOR EACH ROW EXECUTE FUNCTION refuse_close()`)
	benStream.close()
	deadline := time.Now().Add(10 * time.Second)
	for e.count(`SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM close_attempts`) < 2 { // the close and a renewal
		if time.Now().After(deadline) {
			t.Fatal("the stream's end was not recorded twice")
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.exec(`DROP TRIGGER refuse_close ON presence_streams`)
	if p := anaStream.nextPresence(); p.UserId != ben.user.Id || p.Online {
		t.Fatalf("got %v, want ben offline", p)
	}
}

// A live node whose row was swept (its lease ran out: a renewal came too
// late) records its open streams again, also when a stream's start made
// the row again before the node renewed its lease.
func TestANodeSweptWhileAliveRecordsItsStreamsAgain(t *testing.T) {
	t.Parallel()
	cfg := fastPresence
	cfg.NodeID, cfg.RenewInterval = "swept-node", 50*time.Millisecond
	e := newEnvOn(t, dbtest.New(t), rpc.Config{}, cfg)
	ana := e.signUp()
	e.createPod(ana, 4)
	e.subscribe(ana, nil).ready()
	streams := func() int {
		return e.count(`SELECT count(*) FROM presence_streams WHERE node_id = 'swept-node' AND user_id = $1`, ana.user.Id)
	}
	if n := streams(); n != 1 {
		t.Fatalf("%d streams of ana recorded, want 1", n)
	}
	// The sweep's delete, then the row made again as a stream start does
	// (in one transaction, so that no renewal comes between).
	e.exec(`DO $$ BEGIN
		DELETE FROM nodes WHERE id = 'swept-node';
		INSERT INTO nodes (id, lease_until) VALUES ('swept-node', now() + interval '15 seconds');
	END $$`)
	deadline := time.Now().Add(5 * time.Second)
	for streams() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("ana's stream was not recorded again")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTypingIsDeliveredAndNeverReplayed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	ctx := context.Background()
	ana, ben, stranger := e.signUp(), e.signUp(), e.signUp()
	pod := e.createPod(ana, 4)
	e.join(ben, pod)
	benStream := e.subscribe(ben, nil)
	last := benStream.ready().Pods[0].LastSeq
	anaStream := e.subscribe(ana, nil)
	anaStream.ready()
	benStream.nextPresence() // ana came online

	typing := func(c *client, podID string, on bool) error {
		_, err := c.Chat.SetTyping(ctx, connect.NewRequest(&podsv1.SetTypingRequest{PodId: podID, Typing: on}))
		return err
	}
	if err := typing(ana, pod.Id, true); err != nil {
		t.Fatal(err)
	}
	ev := benStream.next()
	if tp := ev.GetTyping(); tp == nil || tp.UserId != ana.user.Id || !tp.Typing || ev.Seq != 0 || ev.PodId != pod.Id {
		t.Fatalf("ben got %v, want ana typing", ev)
	}
	anaStream.quiet(200 * time.Millisecond) // not to the typist

	// Resuming replays the log, never typing.
	benStream.close()
	resumed := e.subscribe(ben, map[string]int64{pod.Id: last})
	resumed.ready()
	resumed.quiet(300 * time.Millisecond)
	if n := e.count(`SELECT count(*) FROM events`); n != int(last) {
		t.Fatalf("typing was stored: %d events", n)
	}

	wantCode(t, typing(stranger, pod.Id, true), connect.CodeNotFound)
	wantCode(t, typing(ana, "nope", true), connect.CodeInvalidArgument)
	var err error
	for range 10 {
		if err = typing(ben, pod.Id, true); err != nil {
			break
		}
	}
	wantCode(t, err, connect.CodeResourceExhausted)
}

// Unread counts start at the join: messages from before a member joined
// (or while they were away) are not unread, as their stream never carries
// them (found by a review: a new member had the pod's whole history
// unread, a member who joined again had everything unread again).
func TestUnreadCountsStartAtTheJoin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	ctx := context.Background()
	ana, ben := e.signUp(), e.signUp()
	pod := e.createPod(ana, 4)
	e.join(ben, pod)
	for _, body := range []string{"one", "two", "three"} {
		e.send(ana, pod.Id, body, body)
	}
	unread := func(c *client) int64 {
		t.Helper()
		list, err := c.Pod.ListPods(ctx, connect.NewRequest(&podsv1.ListPodsRequest{}))
		if err != nil || len(list.Msg.Pods) != 1 {
			t.Fatalf("ListPods: %v, %v", list, err)
		}
		return list.Msg.Pods[0].UnreadCount
	}
	if n := unread(ben); n != 3 {
		t.Fatalf("ben: %d unread, want 3", n)
	}
	cy := e.signUp()
	e.join(cy, pod)
	if n := unread(cy); n != 0 {
		t.Fatalf("a new member: %d unread, want 0", n)
	}
	e.leave(ben, pod.Id)
	e.send(ana, pod.Id, "away", "while ben was away")
	e.join(ben, pod)
	if n := unread(ben); n != 0 {
		t.Fatalf("ben, back: %d unread, want 0", n)
	}
	e.send(ana, pod.Id, "back", "welcome back")
	if n := unread(ben); n != 1 {
		t.Fatalf("ben, back: %d unread, want 1", n)
	}
}

func TestUnreadCountsAcrossDevices(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	ctx := context.Background()
	ana, ben, stranger := e.signUp(), e.signUp(), e.signUp()
	pod := e.createPod(ana, 4)
	e.join(ben, pod)
	phone, laptop := e.as(ana), e.as(ana)
	phoneStream, laptopStream := e.subscribe(phone, nil), e.subscribe(laptop, nil)
	phoneStream.ready()
	laptopStream.ready()

	var seqs []int64
	for _, body := range []string{"one", "two", "three"} {
		seqs = append(seqs, e.send(ben, pod.Id, body, body).Seq)
	}
	e.send(ana, pod.Id, "mine", "my own message does not count")
	list, err := ana.Pod.ListPods(ctx, connect.NewRequest(&podsv1.ListPodsRequest{}))
	if err != nil || list.Msg.Pods[0].UnreadCount != 3 {
		t.Fatalf("ListPods: %v, %v; want 3 unread", list, err)
	}

	markRead := func(c *client, seq int64) (int64, error) {
		res, err := c.Chat.MarkRead(ctx, connect.NewRequest(&podsv1.MarkReadRequest{PodId: pod.Id, Seq: seq}))
		if err != nil {
			return 0, err
		}
		return res.Msg.UnreadCount, nil
	}
	if n, err := markRead(phone, seqs[1]); err != nil || n != 1 {
		t.Fatalf("mark read: %d, %v; want 1 unread", n, err)
	}
	for _, s := range []*sub{laptopStream, phoneStream} {
		for {
			ev := s.next()
			if r := ev.GetReadUpdated(); r != nil {
				if r.Seq != seqs[1] || r.UnreadCount != 1 || ev.PodId != pod.Id {
					t.Fatalf("readUpdated %v", ev)
				}
				break
			}
		}
	}
	// Backward is ignored; ready agrees.
	if n, err := markRead(laptop, seqs[0]); err != nil || n != 1 {
		t.Fatalf("mark read backward: %d, %v", n, err)
	}
	if p := e.subscribe(ana, nil).ready().Pods[0]; p.UnreadCount != 1 || p.ReadSeq != seqs[1] {
		t.Fatalf("ready: unread %d, read seq %d", p.UnreadCount, p.ReadSeq)
	}
	// Past the end is the end.
	if n, err := markRead(laptop, 1<<40); err != nil || n != 0 {
		t.Fatalf("mark read past the end: %d, %v", n, err)
	}
	if n := e.count(`SELECT read_seq FROM memberships WHERE user_id = $1`, ana.user.Id); n != int(seqs[2]+1) {
		t.Fatalf("read_seq %d, want the pod's last seq %d", n, seqs[2]+1)
	}
	_, err = markRead(stranger, 1)
	wantCode(t, err, connect.CodeNotFound)
	_, err = markRead(ana, -1)
	wantCode(t, err, connect.CodeInvalidArgument)
}

func TestJoiningWhileOnlineAnnouncesPresenceBothWays(t *testing.T) {
	t.Parallel()
	e := newEnvOn(t, dbtest.New(t), rpc.Config{}, fastPresence)
	ana, ben := e.signUp(), e.signUp()
	pod := e.createPod(ana, 4)
	anaStream := e.subscribe(ana, nil)
	anaStream.ready()
	benStream := e.subscribe(ben, nil)
	if pods := benStream.ready().Pods; len(pods) != 0 {
		t.Fatalf("ben is in %d pods before joining", len(pods))
	}

	e.join(ben, pod)
	if p := anaStream.nextPresence(); p.UserId != ben.user.Id || !p.Online {
		t.Fatalf("ana saw %v, want ben online", p)
	}
	if p := benStream.nextPresence(); p.UserId != ana.user.Id || !p.Online {
		t.Fatalf("ben saw %v, want ana online", p)
	}
}
