package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pods-dev/pods/db"
	"github.com/pods-dev/pods/rpc/convert"
	podsv1 "github.com/pods-dev/pods/rpc/gen/pods/v1"
)

// Notification channels the triggers use.
const (
	channelEvents  = "pods_events"  // payload: a pod id with new events
	channelMembers = "pods_members" // payload: a user id who joined a pod
)

// Config configures a Hub.
type Config struct {
	Pool   *db.Pool
	Logger *slog.Logger
	// Heartbeat is the interval of heartbeat events. Default 15 s.
	Heartbeat time.Duration
	// QueueSize bounds each subscriber's queue of batches its stream has
	// not taken yet (it takes them all at once, then sends them); a
	// subscriber whose queue is full is cut off. Default 256.
	QueueSize int
	// BatchSize is the most events read per pod in one query. Default 500.
	BatchSize int
	// ProbeInterval is how long the listener, or the replication reader,
	// may hear nothing before it checks that its connection is alive (the
	// reader gives up after as long again). Default 10 s.
	ProbeInterval time.Duration

	// NodeID names this node in the presence tables. Default: random.
	NodeID string
	// PresenceGrace is how long a user stays online after their last stream
	// closed. Default 3 s.
	PresenceGrace time.Duration
	// LeaseTTL is how long the node's lease lasts without renewal, and so
	// how long a dead node's users stay online. Default 15 s.
	LeaseTTL time.Duration
	// RenewInterval is how often the lease is renewed. Default 5 s.
	RenewInterval time.Duration
	// SweepInterval is how often the node tries to sweep presence.
	// Default 1 s.
	SweepInterval time.Duration
	// SessionCheckInterval is how often the node checks that the sessions
	// of its streams still hold (an expiry, or a log-out it was not
	// notified of, ends a stream within it). Default 30 s.
	SessionCheckInterval time.Duration
	// ChangeSource is SourceNotify (the default) or SourceWAL. Prepare sets
	// up the database for it.
	ChangeSource string
	// Writers is the pool whose commits reach the hub through
	// MessagesWritten (SendMessage's): the listener skips their
	// notifications. May be nil.
	Writers *db.Writers
	// Metrics is where the hub registers its metrics (one hub per
	// registry). Default: a private registry nobody reads.
	Metrics prometheus.Registerer
}

// Hub fans the event log out to subscribers. One Hub runs per process.
type Hub struct {
	cfg Config
	log *slog.Logger

	mu    sync.Mutex
	pods  map[string]*podState     // pods with at least one subscriber
	users map[string][]*subscriber // every open subscriber, by user
	// bySession holds the subscribers opened with a session, by its token
	// hash.
	bySession map[string][]*subscriber
	// sessionsChanged holds the sessions of open streams announced as
	// changed, for checkSessions, which checkSessionsNow (cap 1) wakes.
	sessionsChanged  map[string]bool
	checkSessionsNow chan struct{}
	// announced holds when sessions were last announced as changed, for
	// announcedFor: a stream authenticated just before the announcement
	// may register after it.
	announced map[string]time.Time
	dirty     map[string]time.Time // pods that may have unread events → since when
	// walSeen holds the seqs that the WAL source saw committed in pods
	// nobody here watched, for walSeenFor, and when it saw them.
	walSeen      map[string]walAnnounced
	walSeenSwept time.Time
	wake         chan struct{}     // cap 1: dirty pods are waiting
	streams      map[string]string // open stream id → user id, for presence
	unclosed     map[string]string // ended streams whose end failed to record → user id

	closeOnce sync.Once
	closing   chan struct{} // closed by Close: streams end

	sessions SessionWatcher // told of revoked sessions; may be nil

	metrics     *metrics
	walPosition atomic.Uint64 // the WAL position handled; 0 while not replicating
	listening   atomic.Bool   // the LISTEN connection is up
	// nodeStarted is when this node's row in nodes was made, as the last
	// lease renewal saw it; only keepPresence uses it.
	nodeStarted time.Time
}

// podState is the hub's read position in one pod's log and who gets it.
type podState struct {
	lastSeq int64 // the last seq fanned out
	wantSeq int64 // a seq the WAL source saw committed; read until reached
	// shortSince is when a read first found the pod short of wantSeq
	// (zero while it is not); rereading says a read again is scheduled.
	shortSince time.Time
	rereading  bool
	known      bool // lastSeq has been read from the database
	subs       map[*subscriber]bool
}

// NewHub returns a hub; Run makes it work.
func NewHub(cfg Config) *Hub {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = 256
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 500
	}
	if cfg.ProbeInterval == 0 {
		cfg.ProbeInterval = 10 * time.Second
	}
	if cfg.NodeID == "" {
		cfg.NodeID = uuid.NewString()
	}
	if cfg.PresenceGrace == 0 {
		cfg.PresenceGrace = 3 * time.Second
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = 15 * time.Second
	}
	if cfg.RenewInterval == 0 {
		cfg.RenewInterval = 5 * time.Second
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = time.Second
	}
	if cfg.SessionCheckInterval == 0 {
		cfg.SessionCheckInterval = 30 * time.Second
	}
	if cfg.ChangeSource == "" {
		cfg.ChangeSource = SourceNotify
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	h := &Hub{
		cfg:              cfg,
		log:              cfg.Logger,
		pods:             make(map[string]*podState),
		users:            make(map[string][]*subscriber),
		bySession:        make(map[string][]*subscriber),
		sessionsChanged:  make(map[string]bool),
		checkSessionsNow: make(chan struct{}, 1),
		announced:        make(map[string]time.Time),
		dirty:            make(map[string]time.Time),
		walSeen:          make(map[string]walAnnounced),
		wake:             make(chan struct{}, 1),
		streams:          make(map[string]string),
		unclosed:         make(map[string]string),

		closing: make(chan struct{}),
	}
	h.metrics = newMetrics(cfg.Metrics, h)
	return h
}

// Close ends every stream with unavailable, so that clients resubscribe to
// another node, and refuses new ones. Run keeps going until its context
// ends.
func (h *Hub) Close() {
	h.closeOnce.Do(func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		close(h.closing)
		for _, subs := range h.users {
			for _, s := range subs {
				s.signal()
			}
		}
	})
}

func (h *Hub) isClosing() bool {
	select {
	case <-h.closing:
		return true
	default:
		return false
	}
}

// Prepare sets the database up for the node and its change source: it
// removes what an earlier process under the node's id left (its streams,
// if it crashed: their users go offline unless they come back), turns the
// events trigger's NOTIFY on or off (refusing to while another live node
// uses the other source), and for the WAL source checks that the server
// can stream logical replication.
func (h *Hub) Prepare(ctx context.Context) error {
	if err := db.NodeRemove(ctx, h.cfg.Pool, h.cfg.NodeID); err != nil {
		return err
	}
	switch h.cfg.ChangeSource {
	case SourceNotify:
		return db.UseNotify(ctx, h.cfg.Pool, h.cfg.NodeID, h.cfg.LeaseTTL, true)
	case SourceWAL:
		if err := db.CheckLogicalReplication(ctx, h.cfg.Pool); err != nil {
			return err
		}
		return db.UseNotify(ctx, h.cfg.Pool, h.cfg.NodeID, h.cfg.LeaseTTL, false)
	}
	return fmt.Errorf("unknown change source %q: want %s or %s", h.cfg.ChangeSource, SourceNotify, SourceWAL)
}

// Run listens for notifications, fans events out and keeps presence until
// ctx ends. Call Prepare first.
func (h *Hub) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { h.listen(ctx) })
	if h.cfg.ChangeSource == SourceWAL {
		wg.Go(func() { h.replicate(ctx) })
	}
	wg.Go(func() { h.pollWhileSourceDown(ctx) })
	wg.Go(func() { h.fetch(ctx) })
	wg.Go(func() { h.keepPresence(ctx) })
	wg.Go(func() { h.beat(ctx) })
	wg.Go(func() { h.checkSessions(ctx) })
	wg.Wait()
}

// listen holds the LISTEN connection, reconnecting with jittered backoff.
// After every (re)connect it marks every tracked pod dirty and has every
// subscriber recheck its memberships, since notifications sent while it was
// away are lost.
func (h *Hub) listen(ctx context.Context) {
	var retry reconnectBackoff
	for ctx.Err() == nil {
		began := time.Now()
		err := h.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := retry.next(time.Since(began))
		h.metrics.listenReconnects.Inc()
		h.log.Warn("stream: listener lost its connection", "err", err, "retry_in", wait)
		sleep(ctx, wait)
	}
}

func (h *Hub) listenOnce(ctx context.Context) error {
	cfg := h.cfg.Pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = "pods listen " + h.cfg.NodeID
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	listen := "LISTEN " + strings.Join([]string{channelEvents, channelMembers, channelPresence, channelTyping, channelRead, channelSessions}, "; LISTEN ")
	if _, err := conn.Exec(ctx, listen); err != nil {
		return err
	}
	h.listening.Store(true)
	defer h.listening.Store(false)
	defer h.sessionsLost()
	if h.cfg.Writers != nil {
		// Postgres may have restarted: no PID of the writers' dead
		// backends, which other sessions may get now, passes for theirs.
		h.cfg.Writers.Forget()
	}
	h.resync()
	for {
		waitCtx, cancel := context.WithTimeout(ctx, h.cfg.ProbeInterval)
		n, err := conn.WaitForNotification(waitCtx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			// Quiet: make sure the connection is alive, not silently dead.
			probeCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err = conn.Ping(probeCtx)
			cancel()
			if err != nil {
				return err
			}
		case err != nil:
			return err
		case n.Channel == channelEvents && h.cfg.Writers != nil && h.cfg.Writers.Owns(n.PID):
			// This node's own messages: MessagesWritten has them.
		default:
			h.notified(n.Channel, n.Payload)
		}
	}
}

// sourceDownPoll is how often a node reads every pod it streams while its
// change source is down.
const sourceDownPoll = time.Second

// pollWhileSourceDown marks every tracked pod dirty each sourceDownPoll
// while the connection that tells of new events (LISTEN, or replication
// with the wal source) is down or still starting: other nodes' events then
// come within about a second instead of not at all, whether the database
// refuses new connections (max_connections reached) or, with wal, creating
// the slot waits for every transaction open on the server.
func (h *Hub) pollWhileSourceDown(ctx context.Context) {
	every(ctx, sourceDownPoll, func() {
		down := !h.listening.Load()
		if h.cfg.ChangeSource == SourceWAL {
			down = h.walPosition.Load() == 0
		}
		if down {
			h.mu.Lock()
			h.markTrackedDirtyLocked()
			h.mu.Unlock()
		}
	})
}

// resync marks every tracked pod dirty and has every subscriber recheck
// its memberships.
func (h *Hub) resync() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.markTrackedDirtyLocked()
	for _, subs := range h.users {
		for _, s := range subs {
			s.membershipsChanged()
		}
	}
}

func (h *Hub) notified(channel, payload string) {
	if channel == channelSessions {
		h.sessionNotified(payload)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch channel {
	case channelEvents:
		if _, ok := h.pods[payload]; ok {
			h.markDirtyLocked(payload, time.Now())
		}
	case channelMembers:
		for _, s := range h.users[payload] {
			s.membershipsChanged()
		}
	default:
		h.ephemeral(channel, payload)
	}
}

// markTrackedDirtyLocked marks every tracked pod dirty. h.mu must be held.
func (h *Hub) markTrackedDirtyLocked() {
	now := time.Now()
	for id := range h.pods {
		h.markDirtyLocked(id, now)
	}
}

// markDirtyLocked marks a pod dirty since a time, keeping the earliest,
// and wakes the fetcher. h.mu must be held.
func (h *Hub) markDirtyLocked(podID string, since time.Time) {
	if t, ok := h.dirty[podID]; !ok || since.Before(t) {
		h.dirty[podID] = since
	}
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// fetch reads the new events of dirty pods, all pods in one query, and
// hands them to the pods' subscribers.
func (h *Hub) fetch(ctx context.Context) {
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.wake:
		}
		cursors, since := h.takeDirty()
		if len(cursors) == 0 {
			continue
		}
		h.metrics.logReads.Inc()
		batches, err := db.EventsAfterEach(ctx, h.cfg.Pool, cursors, h.cfg.BatchSize)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			h.log.Warn("stream: reading events failed", "err", err, "retry_in", backoff)
			h.markDirty(since)
			sleep(ctx, jitter(backoff))
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		h.fanOut(batches, since)
	}
}

// takeDirty empties the dirty set, returning the position of each dirty
// pod whose position is known, and since when each is dirty. Pods still
// being attached stay dirty.
func (h *Hub) takeDirty() ([]db.PodCursor, map[string]time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cursors := make([]db.PodCursor, 0, len(h.dirty))
	since := make(map[string]time.Time, len(h.dirty))
	for id, t := range h.dirty {
		ps := h.pods[id]
		if ps == nil {
			delete(h.dirty, id)
			continue
		}
		if ps.known {
			cursors = append(cursors, db.PodCursor{PodID: id, After: ps.lastSeq})
			since[id] = t
			delete(h.dirty, id)
		}
	}
	return cursors, since
}

func (h *Hub) markDirty(since map[string]time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, t := range since {
		h.markDirtyLocked(id, t)
	}
}

// fanOut converts each batch once and queues it to the pod's subscribers;
// since says when each pod became dirty. A pod with more events to read
// stays dirty; one short of a seq the WAL source saw committed is read
// again after a while.
func (h *Hub) fanOut(batches []db.EventBatch, since map[string]time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fanOutLocked(batches, since)
}

// fanOutLocked is fanOut with h.mu held; since may lack pods (their
// latency is not recorded).
func (h *Hub) fanOutLocked(batches []db.EventBatch, since map[string]time.Time) {
	for _, b := range batches {
		ps := h.pods[b.PodID]
		if ps == nil {
			continue
		}
		d := &delivery{podID: b.PodID, gone: b.Gone}
		for _, e := range b.Events {
			if e.Seq <= ps.lastSeq {
				continue
			}
			d.events = append(d.events, h.convert(e))
			ps.lastSeq = e.Seq
		}
		dirtySince, measured := since[b.PodID] // not for events this node committed
		if !measured {
			dirtySince = time.Now()
		}
		switch {
		case len(b.Events) == h.cfg.BatchSize:
			h.markDirtyLocked(b.PodID, dirtySince)
		case ps.lastSeq < ps.wantSeq && !b.Gone:
			h.readAgainLocked(b.PodID, ps, dirtySince)
		default:
			ps.shortSince = time.Time{}
		}
		if len(d.events) == 0 && !d.gone {
			continue
		}
		if measured {
			latency := time.Since(dirtySince).Seconds()
			for range d.events {
				h.metrics.latency.Observe(latency)
			}
		}
		for s := range ps.subs {
			s.push(d, h.metrics.logged)
		}
		if d.gone {
			delete(h.pods, b.PodID)
		}
	}
}

// readAgainLocked reads a pod short of a seq the WAL source saw committed
// again after a wait: a millisecond at first (a commit is visible a moment
// after it reaches the replication stream), then a quarter of the time it
// has been short, up to a second (a commit held by a synchronous standby,
// or one lost in a failover, which the pod's next commit passes). h.mu
// must be held.
func (h *Hub) readAgainLocked(podID string, ps *podState, since time.Time) {
	if ps.rereading {
		return
	}
	if ps.shortSince.IsZero() {
		ps.shortSince = time.Now()
	}
	ps.rereading = true
	time.AfterFunc(min(max(time.Since(ps.shortSince)/4, time.Millisecond), time.Second), func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		ps.rereading = false
		if h.pods[podID] == ps {
			h.markDirtyLocked(podID, since)
		}
	})
}

// convert turns a logged event into its API form. An event this node
// cannot convert (a kind added by a newer node during a rolling deploy)
// goes out with its seq only, so that the seq stays continuous.
func (h *Hub) convert(e db.Event) *podsv1.Event {
	ev, err := convert.Event(e)
	if err != nil {
		h.log.Error("stream: sending an event without its content", "err", err)
		return &podsv1.Event{PodId: e.PodID, Seq: e.Seq}
	}
	return ev
}

// committed hands the hub events that this process has just committed, in
// seq order per pod, so that its own subscribers get them without waiting
// for the change source. Only events continuing what a pod has delivered are
// fanned out here; the pods of the rest (another writer's event came first,
// or the pod's position is being read) are marked dirty, and the log
// delivers them in order.
func (h *Hub) committed(events []db.Event) {
	var batches []db.EventBatch
	h.mu.Lock()
	defer h.mu.Unlock()
	next := make(map[string]int64) // pod → the seq that continues it
	for _, e := range events {
		ps := h.pods[e.PodID]
		if ps == nil {
			continue
		}
		if !ps.known {
			h.markDirtyLocked(e.PodID, time.Now())
			continue
		}
		want, ok := next[e.PodID]
		if !ok {
			want = ps.lastSeq + 1
		}
		if e.Seq != want {
			if e.Seq > want {
				h.markDirtyLocked(e.PodID, time.Now())
			}
			continue
		}
		next[e.PodID] = want + 1
		if n := len(batches); n > 0 && batches[n-1].PodID == e.PodID {
			batches[n-1].Events = append(batches[n-1].Events, e)
		} else {
			batches = append(batches, db.EventBatch{PodID: e.PodID, Events: []db.Event{e}})
		}
	}
	h.fanOutLocked(batches, nil)
}

// MessagesWritten tells the hub what this process's message writers (on
// Config.Writers) have just done: stored are the messages they committed
// (or found committed: a retry's), in seq order per pod, and failedPods the
// pods of writes that failed, perhaps after their commit. Its subscribers
// get the messages at once (see committed), and the failed pods are read
// from the log. The listener skips the writers' notifications: every
// commit of theirs reaches the hub here.
func (h *Hub) MessagesWritten(stored []db.Message, failedPods []string) {
	events := make([]db.Event, len(stored))
	for i, m := range stored {
		events[i] = m.CreatedEvent()
	}
	h.committed(events)
	if len(failedPods) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range failedPods {
		if _, ok := h.pods[id]; ok {
			h.markDirtyLocked(id, time.Now())
		}
	}
}

// register adds a subscriber to the user index, so that it learns of the
// user's new memberships.
func (h *Hub) register(s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.users[s.userID] = append(h.users[s.userID], s)
	if s.session != "" {
		h.bySession[s.session] = append(h.bySession[s.session], s)
		if _, ok := h.announced[s.session]; ok {
			h.sessionChangedLocked(s.session)
		}
	}
}

// unregister removes a subscriber and detaches it from all its pods.
func (h *Hub) unregister(s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	removeSubscriber(h.users, s.userID, s)
	removeSubscriber(h.bySession, s.session, s)
	attached := s.attached
	s.attached = nil
	for _, id := range attached {
		h.detachLocked(s, id)
	}
}

// removeSubscriber removes s from the subscribers of key.
func removeSubscriber(index map[string][]*subscriber, key string, s *subscriber) {
	subs := slices.DeleteFunc(index[key], func(o *subscriber) bool { return o == s })
	if len(subs) == 0 {
		delete(index, key)
	} else {
		index[key] = subs
	}
}

// attach subscribes s to pods. When it returns, every event committed after
// its return reaches s through the hub: the caller reads the log only after
// attach, and drops what it has already seen.
func (h *Hub) attach(ctx context.Context, s *subscriber, podIDs []string) error {
	var unknown []string
	h.mu.Lock()
	for _, id := range podIDs {
		ps := h.pods[id]
		if ps == nil {
			ps = &podState{subs: make(map[*subscriber]bool)}
			h.pods[id] = ps
		}
		if !ps.subs[s] {
			ps.subs[s] = true
			s.attached = append(s.attached, id)
		}
		if !ps.known {
			unknown = append(unknown, id)
		}
	}
	h.mu.Unlock()
	if len(unknown) == 0 {
		return nil
	}
	// The pods' positions are read after they are tracked, so a
	// notification for any later event finds them tracked.
	seqs, err := db.LastSeqs(ctx, h.cfg.Pool, unknown)
	if err != nil {
		h.detach(s, podIDs...)
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range unknown {
		ps := h.pods[id]
		if ps == nil {
			continue
		}
		seq, exists := seqs[id]
		// Two subscribers may attach a new pod at once: the lower position
		// is safe for both (the higher one drops what it has seen).
		if !ps.known || seq < ps.lastSeq {
			ps.lastSeq = seq
		}
		ps.known = true
		// A commit the WAL source announced may not be visible yet to
		// the read above: read again until it is.
		if seen := h.walSeenFor(id); seen > ps.lastSeq {
			ps.wantSeq = max(ps.wantSeq, seen)
			h.markDirtyLocked(id, time.Now())
		}
		if _, dirty := h.dirty[id]; !exists || dirty {
			h.markDirtyLocked(id, time.Now())
		}
	}
	return nil
}

// detach unsubscribes s from pods.
func (h *Hub) detach(s *subscriber, podIDs ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range podIDs {
		h.detachLocked(s, id)
	}
}

func (h *Hub) detachLocked(s *subscriber, podID string) {
	if i := slices.Index(s.attached, podID); i >= 0 {
		s.attached = slices.Delete(s.attached, i, i+1)
	}
	ps := h.pods[podID]
	if ps == nil {
		return
	}
	delete(ps.subs, s)
	if len(ps.subs) == 0 {
		delete(h.pods, podID)
		delete(h.dirty, podID)
	}
}

func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d)
}

// healthyConnection is how long a connection must have lasted for the
// next reconnect to start over at the shortest wait.
const healthyConnection = 10 * time.Second

// reconnectBackoff is the wait before a connection is tried again: from
// 50 ms, doubling up to 5 s, with jitter. It starts over only after a
// connection that lasted healthyConnection: one that fails right after it
// opened (a server that accepts, then errors every time) backs off as if
// it never opened.
type reconnectBackoff struct{ last time.Duration }

// next returns the wait after a connection that lasted for lasted.
func (b *reconnectBackoff) next(lasted time.Duration) time.Duration {
	if lasted >= healthyConnection {
		b.last = 0
	}
	b.last = min(max(2*b.last, 50*time.Millisecond), 5*time.Second)
	return jitter(b.last)
}

// every calls f every d until ctx ends.
func every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
