package stream

import (
	"context"
	"encoding/hex"
	"strings"
	"time"

	"github.com/pods-dev/pods/db"
)

// channelSessions carries the token hash (hex) of every session deleted or
// changed, and each node's heartbeats ("beat:" and the node id).
const channelSessions = "pods_sessions"

// SessionHeartbeat is how often a hub with a SessionWatcher sends itself a
// heartbeat through the database on the sessions channel.
const SessionHeartbeat = 500 * time.Millisecond

const beatPrefix = "beat:"

// SessionWatcher is told by the hub's listener of sessions that stopped
// working, so that it can cache the others.
type SessionWatcher interface {
	// SessionRevoked is called with the hash of a token that stopped
	// working.
	SessionRevoked(tokenHash []byte)
	// Heard is called when one of this node's heartbeats came back:
	// notifications are delivered in commit order, so every revocation
	// committed before the heartbeat was sent has been passed on.
	Heard()
	// Lost is called when revocations may have been missed (the listener
	// lost its connection, or a notification made no sense).
	Lost()
}

// WatchSessions has the listener tell w of revoked sessions, and the hub
// send the heartbeats w needs.
func (h *Hub) WatchSessions(w SessionWatcher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sessions = w
}

// sessionWatcher returns the watcher, or nil.
func (h *Hub) sessionWatcher() SessionWatcher {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sessions
}

// sessionNotified passes a pods_sessions notification on, and has the
// streams of that session checked.
func (h *Hub) sessionNotified(payload string) {
	w := h.sessionWatcher()
	if node, ok := strings.CutPrefix(payload, beatPrefix); ok {
		if node == h.cfg.NodeID && w != nil {
			w.Heard()
		}
		return
	}
	hash, err := hex.DecodeString(payload)
	if err != nil {
		h.sessionsLost()
		return
	}
	if w != nil {
		w.SessionRevoked(hash)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.announced[string(hash)] = time.Now()
	if h.bySession[string(hash)] != nil {
		h.sessionChangedLocked(string(hash))
	}
}

// announcedFor is how long a session announced as changed is remembered
// at least (until the first periodic check after that): a stream that
// registers meanwhile has its session checked at once. One that registers
// later is checked within SessionCheckInterval.
const announcedFor = time.Minute

// sessionChangedLocked has checkSessions check a session of open streams.
// h.mu must be held.
func (h *Hub) sessionChangedLocked(hash string) {
	h.sessionsChanged[hash] = true
	select {
	case h.checkSessionsNow <- struct{}{}:
	default:
	}
}

// checkSessions ends the streams whose session expired or was deleted:
// those of sessions announced as changed at once, and every
// SessionCheckInterval all of them (an expiry, or a deletion this node did
// not hear of), until ctx ends. A changed session that still works (its
// expiry moved later, say) keeps its streams. A check that fails is tried
// again a second later.
func (h *Hub) checkSessions(ctx context.Context) {
	t := time.NewTicker(h.cfg.SessionCheckInterval)
	defer t.Stop()
	for {
		all := false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			all = true
		case <-h.checkSessionsNow:
		}
		var hashes [][]byte
		h.mu.Lock()
		if all {
			for hash := range h.bySession {
				hashes = append(hashes, []byte(hash))
			}
			for hash, at := range h.announced {
				if time.Since(at) > announcedFor {
					delete(h.announced, hash)
				}
			}
		} else {
			for hash := range h.sessionsChanged {
				hashes = append(hashes, []byte(hash))
			}
		}
		clear(h.sessionsChanged)
		h.mu.Unlock()
		if len(hashes) == 0 {
			continue
		}
		ended, err := db.SessionsEnded(ctx, h.cfg.Pool, hashes)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			h.log.Warn("stream: checking the sessions of open streams failed; retrying in a second", "err", err)
			sleep(ctx, time.Second)
			h.mu.Lock()
			for _, hash := range hashes {
				if h.bySession[string(hash)] != nil {
					h.sessionChangedLocked(string(hash))
				}
			}
			h.mu.Unlock()
			continue
		}
		h.endSessions(ended)
	}
}

// endSessions ends the streams of sessions that stopped working.
func (h *Hub) endSessions(tokenHashes [][]byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, hash := range tokenHashes {
		for _, s := range h.bySession[string(hash)] {
			s.end(ErrSessionEnded)
		}
	}
}

// sessionsLost tells the watcher that revocations may have been missed.
func (h *Hub) sessionsLost() {
	if w := h.sessionWatcher(); w != nil {
		w.Lost()
	}
}

// beat sends this node's session heartbeats until ctx ends.
func (h *Hub) beat(ctx context.Context) {
	every(ctx, SessionHeartbeat, func() {
		if h.sessionWatcher() == nil {
			return
		}
		if err := db.Notify(ctx, h.cfg.Pool, channelSessions, beatPrefix+h.cfg.NodeID); err != nil && ctx.Err() == nil {
			h.log.Warn("stream: sending a session heartbeat failed", "err", err)
		}
	})
}
