package stream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pods-dev/pods/db"
	"github.com/pods-dev/pods/rpc/convert"
	podsv1 "github.com/pods-dev/pods/rpc/gen/pods/v1"
)

// delivery is what the hub hands a subscriber: new events of one pod, in
// seq order, shared read-only by all its subscribers; or the news that the
// pod is gone.
type delivery struct {
	podID  string
	events []*podsv1.Event
	gone   bool
}

// subscriber is one open stream. The hub pushes to it without ever
// blocking; its own goroutine (Serve) does everything else.
type subscriber struct {
	userID   string
	session  string // the token hash of the stream's session, or ""
	maxQueue int
	// attached lists the pods the hub sends this subscriber; the hub's lock
	// guards it.
	attached []string
	// wake (cap 1) has the stream look at what changed: a delivery queued,
	// a refresh or a heartbeat due, the stream ended or the hub closing
	// (the client's going is its context's). A waiting stream holds a
	// channel for all of these, not one each.
	wake chan struct{}

	mu sync.Mutex
	// queue holds the deliveries not taken yet, oldest first. It grows as
	// needed, so that an idle stream holds no room for a burst.
	queue     []*delivery
	refresh   bool            // the user joined a pod
	heartbeat bool            // a heartbeat is due
	endErr    error           // why the stream must end: ErrSlowConsumer or ErrSessionEnded
	onEnd     func(err error) // called once, when endErr is set
}

func newSubscriber(userID string, maxQueue int, onEnd func(err error)) *subscriber {
	return &subscriber{userID: userID, maxQueue: maxQueue, wake: make(chan struct{}, 1), onEnd: onEnd}
}

// signal wakes the stream's goroutine, if it is not woken already.
func (s *subscriber) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// end makes the stream end with err, unless it was ended already.
func (s *subscriber) end(err error) {
	s.mu.Lock()
	first := s.endErr == nil
	if first {
		s.endErr = err
	}
	s.mu.Unlock()
	if first {
		s.signal()
		s.onEnd(err)
	}
}

// endedWith returns why the stream was ended, or nil.
func (s *subscriber) endedWith() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.endErr
}

// push queues d, adding its events to fannedOut first, or cuts the
// subscriber off if its queue is full.
func (s *subscriber) push(d *delivery, fannedOut prometheus.Counter) {
	s.mu.Lock()
	full := len(s.queue) >= s.maxQueue
	if !full {
		fannedOut.Add(float64(len(d.events)))
		s.queue = append(s.queue, d)
	}
	s.mu.Unlock()
	if full {
		s.end(ErrSlowConsumer)
		return
	}
	s.signal()
}

// take empties the queue and returns what it held; the queue goes on in
// spare, which the caller no longer uses (nil is fine).
func (s *subscriber) take(spare []*delivery) []*delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	taken := s.queue
	s.queue = spare[:0]
	return taken
}

func (s *subscriber) membershipsChanged() {
	s.mu.Lock()
	s.refresh = true
	s.mu.Unlock()
	s.signal()
}

func (s *subscriber) heartbeatDue() {
	s.mu.Lock()
	s.heartbeat = true
	s.mu.Unlock()
	s.signal()
}

// due takes the refresh and the heartbeat that are due.
func (s *subscriber) due() (refresh, heartbeat bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	refresh, heartbeat = s.refresh, s.heartbeat
	s.refresh, s.heartbeat = false, false
	return refresh, heartbeat
}

// ErrClosing ends every stream of a node that shuts down.
var ErrClosing = connect.NewError(connect.CodeUnavailable, errors.New("stream: server shutting down; resubscribe with your cursors"))

// ErrSlowConsumer ends a stream whose client did not keep up.
var ErrSlowConsumer = connect.NewError(connect.CodeResourceExhausted,
	errors.New("stream: too slow to keep up; resubscribe with your cursors"))

// ErrSessionEnded ends a stream whose session ended (log-out or expiry).
var ErrSessionEnded = connect.NewError(connect.CodeUnauthenticated,
	errors.New("stream: the session ended (logged out or expired); log in again"))

// Request is one Subscribe call.
type Request struct {
	UserID string
	// Cursors are the last seq the client has of each pod.
	Cursors map[string]int64
	// Send writes one event to the client.
	Send func(*podsv1.Event) error
	// Session is the token hash of the session the stream was opened with,
	// if any: when the session is deleted or expires, the stream ends with
	// ErrSessionEnded.
	Session []byte
	// CutOff, if set, is called (from another goroutine) when the stream
	// must end, so that a Send blocked on a client that stopped reading
	// returns.
	CutOff func()
}

// stream is the state of one Serve call, owned by its goroutine.
type stream struct {
	hub   *Hub
	sub   *subscriber
	req   Request
	sent  sentSeqs    // the last seq sent of each of the stream's pods
	spare []*delivery // the queue's other slice, reused while small
	// closePresence records the stream's end in presence.
	closePresence func()
}

// Serve runs one Subscribe stream until ctx ends or the stream fails: ready,
// the catch-up from req.Cursors, then live events and heartbeats.
func (h *Hub) Serve(ctx context.Context, req Request) error {
	st, err := h.open(ctx, req)
	if st == nil {
		return err
	}
	defer st.close()
	return st.run(ctx)
}

// open registers a stream and starts it (ready and the catch-up). If it
// returns a stream, the caller closes it; if not, the error is what the
// client gets (nil if the client went away).
func (h *Hub) open(ctx context.Context, req Request) (*stream, error) {
	select {
	case <-h.closing:
		return nil, ErrClosing
	default:
	}
	cutOff := req.CutOff // capturing req would move all of it to the heap
	s := newSubscriber(req.UserID, h.cfg.QueueSize, func(err error) {
		if err == ErrSlowConsumer {
			h.metrics.slow.Inc()
		}
		if cutOff != nil {
			cutOff()
		}
	})
	s.session = string(req.Session)
	st := &stream{hub: h, sub: s, req: req}
	h.metrics.open.Inc()
	// Registered before memberships are read: a join after the read
	// triggers a refresh.
	h.register(s)
	opened := false
	defer func() {
		if !opened {
			st.close()
		}
	}()
	var err error
	st.closePresence, err = h.openPresence(ctx, req.UserID)
	if err == nil {
		err = st.start(ctx)
	}
	if err != nil {
		return nil, st.fail(ctx, err)
	}
	opened = true
	return st, nil
}

// close unregisters the stream and records its end.
func (st *stream) close() {
	if st.closePresence != nil {
		st.closePresence()
	}
	st.hub.unregister(st.sub)
	st.hub.metrics.open.Dec()
}

// run sends live events and heartbeats until ctx ends or the stream fails.
// A stream waits here all its life, on two channels (each costs a waiting
// stream memory), so the work is done in calls that return before it
// waits again: a small stack at the wait lets the runtime shrink an idle
// stream's stack to 8 KiB.
func (st *stream) run(ctx context.Context) error {
	heartbeat := time.AfterFunc(st.hub.cfg.Heartbeat, st.sub.heartbeatDue)
	defer heartbeat.Stop()
	for {
		if err := st.ended(ctx); err != nil {
			if ctx.Err() != nil {
				return nil // the client went away
			}
			return err
		}
		if err := st.work(ctx, heartbeat); err != nil {
			return st.fail(ctx, err)
		}
		select {
		case <-ctx.Done():
		case <-st.sub.wake:
		}
	}
}

// work does what woke the stream: deliveries, a refresh, a heartbeat.
func (st *stream) work(ctx context.Context, heartbeat *time.Timer) error {
	if err := st.deliverQueued(ctx); err != nil {
		return err
	}
	refresh, beat := st.sub.due()
	if refresh {
		if err := st.refreshMemberships(ctx); err != nil {
			return err
		}
	}
	if beat {
		heartbeat.Reset(st.hub.cfg.Heartbeat)
		return st.heartbeat(time.Now())
	}
	return nil
}

// sentSeqs holds the last seq a stream sent of each of its pods. A user is
// in few pods: a slice costs an open stream less than a map.
type sentSeqs []sentSeq

type sentSeq struct {
	podID string
	seq   int64
}

func (ss sentSeqs) get(podID string) (int64, bool) {
	for _, s := range ss {
		if s.podID == podID {
			return s.seq, true
		}
	}
	return 0, false
}

func (ss *sentSeqs) set(podID string, seq int64) {
	for i := range *ss {
		if (*ss)[i].podID == podID {
			(*ss)[i].seq = seq
			return
		}
	}
	*ss = append(*ss, sentSeq{podID, seq})
}

func (ss *sentSeqs) remove(podID string) {
	*ss = slices.DeleteFunc(*ss, func(s sentSeq) bool { return s.podID == podID })
}

// maxSpare is the largest queue slice a stream keeps for reuse after a
// burst.
const maxSpare = 16

// deliverQueued sends what the queue holds.
func (st *stream) deliverQueued(ctx context.Context) error {
	taken := st.sub.take(st.spare)
	defer func() {
		clear(taken)
		st.spare = nil
		if cap(taken) <= maxSpare {
			st.spare = taken
		}
	}()
	for _, d := range taken {
		if err := st.ended(ctx); err != nil {
			return err
		}
		if err := st.deliver(ctx, d); err != nil {
			return err
		}
	}
	return nil
}

// ended returns why the stream must end now, if it must: the client went
// away, the node is closing or the stream was ended (see subscriber.end).
func (st *stream) ended(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if st.hub.isClosing() {
		return ErrClosing
	}
	return st.sub.endedWith()
}

func (st *stream) heartbeat(now time.Time) error {
	return st.req.Send(&podsv1.Event{At: timestamppb.New(now), Kind: &podsv1.Event_Heartbeat{Heartbeat: &podsv1.Heartbeat{}}})
}

// fail turns the error that ended a stream into what the client gets.
func (st *stream) fail(ctx context.Context, err error) error {
	if err := st.sub.endedWith(); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil // the client went away
	}
	var connectErr *connect.Error
	if errors.As(err, &connectErr) {
		return err
	}
	st.hub.log.Warn("stream: ending a stream", "user", st.req.UserID, "err", err)
	return connect.NewError(connect.CodeUnavailable, errors.New("stream interrupted; resubscribe with your cursors"))
}

// start attaches the user's pods, sends ready and catches up every pod in
// the cursors.
func (st *stream) start(ctx context.Context) error {
	joined, err := db.JoinedSeqs(ctx, st.hub.cfg.Pool, st.req.UserID)
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(joined))
	for id := range joined {
		ids = append(ids, id)
	}
	if err := st.hub.attach(ctx, st.sub, ids); err != nil {
		return err
	}
	summaries, err := db.PodsOfUser(ctx, st.hub.cfg.Pool, st.req.UserID)
	if err != nil {
		return err
	}
	ready := &podsv1.Ready{HeartbeatSeconds: int32(st.hub.cfg.Heartbeat / time.Second)}
	for _, sum := range summaries {
		pod := convert.PodSummary(sum)
		for _, m := range sum.Pod.Members {
			if m.Online {
				pod.OnlineUserIds = append(pod.OnlineUserIds, m.User.ID)
			}
		}
		ready.Pods = append(ready.Pods, pod)
		start, err := st.startAfter(ctx, sum)
		if err != nil {
			return err
		}
		st.sent.set(sum.Pod.ID, start)
	}
	// Pods left between the two reads: not the user's any more.
	for _, id := range ids {
		if _, ok := st.sent.get(id); !ok {
			st.hub.detach(st.sub, id)
		}
	}
	// Pods joined between them: attached before their catch-up below, which
	// reads the log after. (The join's refresh skips a pod already sent.)
	var late []string
	for _, sum := range summaries {
		if _, ok := joined[sum.Pod.ID]; !ok {
			late = append(late, sum.Pod.ID)
		}
	}
	if err := st.hub.attach(ctx, st.sub, late); err != nil {
		return err
	}
	err = st.req.Send(&podsv1.Event{At: timestamppb.Now(), Kind: &podsv1.Event_Ready{Ready: ready}})
	if err != nil {
		return err
	}
	for _, sum := range summaries {
		if err := st.catchUp(ctx, sum.Pod.ID); err != nil {
			return err
		}
	}
	return nil
}

// startAfter returns the seq after which a pod's part of the stream starts:
// the client's cursor, or else the pod's last seq. A cursor from before
// the user's current membership starts there only if the user was a member
// right after it (the catch-up then stops at that membership's memberLeft,
// and the refresh goes on at the current memberJoined); else the pod starts
// at the current memberJoined. The stream never carries what happened in
// a pod while the user was not in it.
func (st *stream) startAfter(ctx context.Context, sum db.PodSummary) (int64, error) {
	c, ok := st.req.Cursors[sum.Pod.ID]
	if !ok || c >= sum.Pod.LastSeq {
		return sum.Pod.LastSeq, nil
	}
	if c >= sum.JoinedSeq-1 {
		return c, nil
	}
	member, err := db.MemberAfter(ctx, st.hub.cfg.Pool, sum.Pod.ID, st.req.UserID, c)
	if err != nil || member {
		return c, err
	}
	return sum.JoinedSeq - 1, nil
}

// catchUp sends what the log holds after the last seq sent of a pod.
func (st *stream) catchUp(ctx context.Context, podID string) error {
	for {
		if err := st.ended(ctx); err != nil {
			return err
		}
		after, ok := st.sent.get(podID)
		if !ok {
			return nil // left the pod on the way
		}
		events, err := db.EventsAfter(ctx, st.hub.cfg.Pool, podID, after, st.hub.cfg.BatchSize)
		if err != nil {
			return err
		}
		for _, e := range events {
			if _, ok := st.sent.get(podID); !ok {
				return nil // the user's own memberLeft went out
			}
			if err := st.send(podID, st.hub.convert(e)); err != nil {
				return err
			}
		}
		if len(events) < st.hub.cfg.BatchSize {
			return nil
		}
	}
}

// deliver sends the events of d the client has not had, filling any gap
// from the log first.
func (st *stream) deliver(ctx context.Context, d *delivery) error {
	for _, ev := range d.events {
		last, ok := st.sent.get(d.podID)
		switch {
		case !ok:
			return nil
		case ev.Seq == 0: // ephemeral
			if err := st.req.Send(ev); err != nil {
				return err
			}
			continue
		case ev.Seq <= last:
			continue
		case ev.Seq > last+1:
			// The hub is ahead of this stream (it attached after the hub
			// read these): take the missing part from the log.
			if err := st.catchUp(ctx, d.podID); err != nil {
				return err
			}
			continue
		}
		if err := st.send(d.podID, ev); err != nil {
			return err
		}
	}
	if _, ok := st.sent.get(d.podID); ok && d.gone {
		st.drop(d.podID)
		return st.req.Send(&podsv1.Event{PodId: d.podID, At: timestamppb.Now(), Kind: &podsv1.Event_PodDeleted{PodDeleted: &podsv1.PodDeleted{}}})
	}
	return nil
}

// send sends one logged event and moves the pod's cursor; the user's own
// memberLeft ends the pod's part of the stream, until a refresh finds the
// user joined again since (the join's refresh may have run before the
// memberLeft went out, while the pod was still on the stream).
func (st *stream) send(podID string, ev *podsv1.Event) error {
	if last, _ := st.sent.get(podID); ev.Seq != last+1 {
		return fmt.Errorf("pod %s: event %d after %d: the log has a gap", podID, ev.Seq, last)
	}
	if err := st.req.Send(ev); err != nil {
		return err
	}
	st.sent.set(podID, ev.Seq)
	if left := ev.GetMemberLeft(); left != nil && left.UserId == st.req.UserID {
		st.drop(podID)
		st.sub.membershipsChanged()
	}
	return nil
}

func (st *stream) drop(podID string) {
	st.sent.remove(podID)
	st.hub.detach(st.sub, podID)
}

// refreshMemberships adds the pods the user joined since the stream
// started, from their memberJoined event on.
func (st *stream) refreshMemberships(ctx context.Context) error {
	joined, err := db.JoinedSeqs(ctx, st.hub.cfg.Pool, st.req.UserID)
	if err != nil {
		return err
	}
	var added []string
	for id, seq := range joined {
		if _, ok := st.sent.get(id); !ok {
			added = append(added, id)
			st.sent.set(id, seq-1)
		}
	}
	if err := st.hub.attach(ctx, st.sub, added); err != nil {
		return err
	}
	for _, id := range added {
		if err := st.catchUp(ctx, id); err != nil {
			return err
		}
	}
	return st.sendOnline(ctx, added)
}

// sendOnline tells the stream who is online in pods it just joined, as
// presence events: the ready event it got predates them.
func (st *stream) sendOnline(ctx context.Context, podIDs []string) error {
	if len(podIDs) == 0 {
		return nil
	}
	online, err := db.OnlineMembers(ctx, st.hub.cfg.Pool, podIDs)
	if err != nil {
		return err
	}
	now := timestamppb.Now()
	for _, podID := range podIDs {
		for _, userID := range online[podID] {
			if userID == st.req.UserID {
				continue
			}
			ev := &podsv1.Event{PodId: podID, At: now, Kind: &podsv1.Event_Presence{
				Presence: &podsv1.Presence{UserId: userID, Online: true}}}
			if err := st.req.Send(ev); err != nil {
				return err
			}
		}
	}
	return nil
}
