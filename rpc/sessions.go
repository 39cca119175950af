package rpc

import (
	"sync"
	"time"

	"github.com/pods-dev/pods/stream"
)

// sessionCache remembers the user of recently used tokens, so that most
// calls skip the session lookup. It relies on the hub's listener: every
// session deleted or changed anywhere is announced on a channel the
// listener follows, and the node's own heartbeats on that channel prove
// the listener is keeping up. Without a recent heartbeat (the listener is
// down, or silently dead) the cache answers nothing, so a token revoked
// elsewhere stops working here within milliseconds, or within
// sessionsFreshFor if the listener died unnoticed.
type sessionCache struct {
	mu      sync.Mutex
	heardAt time.Time // the last heartbeat
	gen     uint64    // counts what may have made a lookup in flight stale
	entries map[string]cachedSession
}

type cachedSession struct {
	userID    string
	expiresAt time.Time // the session's own expiry
	cachedAt  time.Time
}

const (
	// sessionsFreshFor is how long after a heartbeat the cache answers.
	sessionsFreshFor    = 3 * stream.SessionHeartbeat
	cachedSessionMaxAge = time.Minute
	maxCachedSessions   = 100_000
)

func newSessionCache() *sessionCache {
	return &sessionCache{entries: make(map[string]cachedSession)}
}

// get returns the user of a cached, unexpired session, and otherwise the
// generation to pass to put after looking the session up.
func (c *sessionCache) get(tokenHash []byte) (userID string, gen uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	e, ok := c.entries[string(tokenHash)]
	if ok && c.fresh(now) && now.Before(e.expiresAt) && now.Sub(e.cachedAt) < cachedSessionMaxAge {
		return e.userID, c.gen, true
	}
	return "", c.gen, false
}

// put caches a session looked up from the database, unless something that
// may have revoked it happened since get returned gen.
func (c *sessionCache) put(tokenHash []byte, gen uint64, userID string, expiresAt time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if !c.fresh(now) || gen != c.gen {
		return
	}
	if len(c.entries) >= maxCachedSessions {
		clear(c.entries)
	}
	c.entries[string(tokenHash)] = cachedSession{userID: userID, expiresAt: expiresAt, cachedAt: now}
}

// fresh reports whether a heartbeat came recently. c.mu must be held.
func (c *sessionCache) fresh(now time.Time) bool {
	return now.Sub(c.heardAt) < sessionsFreshFor
}

// SessionRevoked forgets a session.
func (c *sessionCache) SessionRevoked(tokenHash []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, string(tokenHash))
	c.gen++
}

// Heard notes a heartbeat: every revocation before it has arrived.
func (c *sessionCache) Heard() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.heardAt = time.Now()
}

// Lost forgets every session: revocations may have been missed.
func (c *sessionCache) Lost() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
	c.gen++
	c.heardAt = time.Time{}
}
