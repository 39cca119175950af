package stream

import (
	"context"
	"maps"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/google/uuid"

	"github.com/pods-dev/pods/db"
	podsv1 "github.com/pods-dev/pods/rpc/gen/pods/v1"
)

// Notification channels of ephemeral events, sent by the database.
const (
	channelPresence = "pods_presence" // "<1|0>:<user>:<pod>,<pod>,..."
	channelTyping   = "pods_typing"   // "<pod>:<user>:<1|0>"
	channelRead     = "pods_read"     // "<user>:<pod>:<read seq>:<unread count>"
)

// fullSweepEvery is how many presence sweeps make one that looks at every
// online user (see db.PresenceSweep).
const fullSweepEvery = 30

// keepPresence holds this node's lease and, every SweepInterval, sweeps
// (when no other node is sweeping): dead nodes' streams go, and users with
// no live stream past the grace period go offline. On the way out it
// removes the node, so its users go offline after the grace period unless
// they reconnect elsewhere.
func (h *Hub) keepPresence(ctx context.Context) {
	renew := time.NewTicker(h.cfg.RenewInterval)
	defer renew.Stop()
	// The first sweep comes at a random point of the interval, so that the
	// sweeps of nodes, and other once-a-second work, do not start together.
	sweep := time.NewTimer(rand.N(h.cfg.SweepInterval))
	defer sweep.Stop()
	h.renewLease(ctx)
	for sweeps := 0; ; {
		select {
		case <-ctx.Done():
			removeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := db.NodeRemove(removeCtx, h.cfg.Pool, h.cfg.NodeID); err != nil {
				h.log.Warn("stream: removing node", "node", h.cfg.NodeID, "err", err)
			}
			return
		case <-renew.C:
			h.renewLease(ctx)
		case <-sweep.C:
			full := sweeps%fullSweepEvery == 0
			if _, err := db.PresenceSweep(ctx, h.cfg.Pool, h.cfg.PresenceGrace, full); err != nil && ctx.Err() == nil {
				h.log.Warn("stream: presence sweep failed", "err", err)
			}
			sweeps++
			sweep.Reset(h.cfg.SweepInterval)
		}
	}
}

// renewLease extends the node's lease and records the ends of streams
// that failed to record them. If the node's row is not the one the last
// renewal saw (its lease had expired and a sweep removed it, with its
// streams; this renewal or a stream's start made it again), its open
// streams are recorded again.
func (h *Hub) renewLease(ctx context.Context) {
	h.recordUnclosed(ctx)
	started, err := db.NodeRenew(ctx, h.cfg.Pool, h.cfg.NodeID, h.cfg.LeaseTTL)
	if err != nil {
		if ctx.Err() == nil {
			h.log.Warn("stream: renewing lease failed", "node", h.cfg.NodeID, "err", err)
		}
		return
	}
	if started.Equal(h.nodeStarted) {
		return
	}
	h.mu.Lock()
	open := maps.Clone(h.streams)
	h.mu.Unlock()
	for id, user := range open {
		if err := db.StreamOpened(ctx, h.cfg.Pool, h.cfg.NodeID, h.cfg.LeaseTTL, id, user); err != nil {
			h.log.Warn("stream: recording stream", "err", err)
			return // the next renewal tries again
		}
		// A stream that closed meanwhile may have recorded its end before
		// this recorded it again. (A stream leaves h.streams before it
		// records its end.)
		h.mu.Lock()
		_, stillOpen := h.streams[id]
		h.mu.Unlock()
		if !stillOpen {
			h.recordClosed(ctx, id, user)
		}
	}
	h.nodeStarted = started
}

// recordClosed records the end of a stream. If that fails, the next lease
// renewal tries again: while the node lives, nothing else would end the
// stream's record, and its user would stay online.
func (h *Hub) recordClosed(ctx context.Context, streamID, userID string) {
	if err := db.StreamClosed(ctx, h.cfg.Pool, h.cfg.NodeID, streamID, userID); err != nil {
		if ctx.Err() == nil {
			h.log.Warn("stream: recording stream end", "err", err)
		}
		h.mu.Lock()
		h.unclosed[streamID] = userID
		h.mu.Unlock()
	}
}

// recordUnclosed records the ends of streams whose end failed to record.
func (h *Hub) recordUnclosed(ctx context.Context) {
	h.mu.Lock()
	unclosed := maps.Clone(h.unclosed)
	clear(h.unclosed)
	h.mu.Unlock()
	for id, user := range unclosed {
		h.recordClosed(ctx, id, user)
	}
}

// ephemeral turns a notification of an ephemeral event into deliveries.
// h.mu must be held.
func (h *Hub) ephemeral(channel, payload string) {
	parts := strings.Split(payload, ":")
	now := timestamppb.Now()
	switch {
	case channel == channelPresence && len(parts) == 3:
		online, userID := parts[0] == "1", parts[1]
		for _, podID := range strings.Split(parts[2], ",") {
			ev := &podsv1.Event{PodId: podID, At: now, Kind: &podsv1.Event_Presence{
				Presence: &podsv1.Presence{UserId: userID, Online: online}}}
			h.pushToPod(podID, userID, ev)
		}
	case channel == channelTyping && len(parts) == 3:
		podID, userID := parts[0], parts[1]
		ev := &podsv1.Event{PodId: podID, At: now, Kind: &podsv1.Event_Typing{
			Typing: &podsv1.Typing{UserId: userID, Typing: parts[2] == "1"}}}
		h.pushToPod(podID, userID, ev)
	case channel == channelRead && len(parts) == 4:
		userID, podID := parts[0], parts[1]
		seq, err1 := strconv.ParseInt(parts[2], 10, 64)
		unread, err2 := strconv.ParseInt(parts[3], 10, 64)
		if err1 != nil || err2 != nil {
			break
		}
		ev := &podsv1.Event{PodId: podID, At: now, Kind: &podsv1.Event_ReadUpdated{
			ReadUpdated: &podsv1.ReadUpdated{Seq: seq, UnreadCount: unread}}}
		d := &delivery{podID: podID, events: []*podsv1.Event{ev}}
		for _, s := range h.users[userID] {
			if h.pods[podID] != nil && h.pods[podID].subs[s] {
				s.push(d, h.metrics.ephemeral)
			}
		}
	default:
		h.log.Warn("stream: malformed notification", "channel", channel, "payload", payload)
	}
}

// pushToPod queues an ephemeral event to the pod's subscribers other than
// the user it is about. h.mu must be held.
func (h *Hub) pushToPod(podID, userID string, ev *podsv1.Event) {
	ps := h.pods[podID]
	if ps == nil {
		return
	}
	d := &delivery{podID: podID, events: []*podsv1.Event{ev}}
	for s := range ps.subs {
		if s.userID != userID {
			s.push(d, h.metrics.ephemeral)
		}
	}
}

// openPresence records a new stream of userID, which makes the user
// online, and returns the function that records its end.
func (h *Hub) openPresence(ctx context.Context, userID string) (func(), error) {
	streamID := uuid.NewString()
	h.mu.Lock()
	h.streams[streamID] = userID
	h.mu.Unlock()
	closeStream := func() {
		h.mu.Lock()
		delete(h.streams, streamID)
		h.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		h.recordClosed(ctx, streamID, userID)
	}
	if err := db.StreamOpened(ctx, h.cfg.Pool, h.cfg.NodeID, h.cfg.LeaseTTL, streamID, userID); err != nil {
		closeStream()
		return nil, err
	}
	return closeStream, nil
}
