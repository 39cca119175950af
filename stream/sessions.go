package stream

import (
	"encoding/hex"
)

// channelSessions carries the token hash (hex) of every session deleted or
// changed.
const channelSessions = "pods_sessions"

// SessionWatcher is told by the hub's listener of sessions that stopped
// working, so that it can cache the others.
type SessionWatcher interface {
	// SessionRevoked is called with the hash of a token that stopped
	// working.
	SessionRevoked(tokenHash []byte)
	// Watching is called with true once the listener is listening, and
	// with false when it lost its connection: revocations in between are
	// lost, so a cache must forget everything at both.
	Watching(bool)
}

// WatchSessions has the listener tell w of revoked sessions. Call it before
// Run.
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

// sessionRevoked passes a pods_sessions notification on.
func (h *Hub) sessionRevoked(payload string) {
	hash, err := hex.DecodeString(payload)
	if w := h.sessionWatcher(); w != nil && err == nil {
		w.SessionRevoked(hash)
	}
}

// watchingSessions tells the watcher whether revocations reach it.
func (h *Hub) watchingSessions(on bool) {
	if w := h.sessionWatcher(); w != nil {
		w.Watching(on)
	}
}
