package rpc

import (
	"sync"
	"time"
)

// sessionCache remembers the user of recently used tokens, so that most
// calls skip the session lookup. It relies on the hub's listener: every
// session deleted or changed anywhere is announced on a channel the
// listener follows, and while the listener is not listening the cache
// holds nothing. An entry also lives at most cachedSessionMaxAge.
type sessionCache struct {
	mu       sync.Mutex
	watching bool
	gen      uint64 // counts what may have made a lookup in flight stale
	entries  map[string]cachedSession
}

type cachedSession struct {
	userID    string
	expiresAt time.Time // the session's own expiry
	cachedAt  time.Time
}

const (
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
	e, ok := c.entries[string(tokenHash)]
	now := time.Now()
	if ok && now.Before(e.expiresAt) && now.Sub(e.cachedAt) < cachedSessionMaxAge {
		return e.userID, c.gen, true
	}
	return "", c.gen, false
}

// put caches a session looked up from the database, unless something that
// may have revoked it happened since get returned gen.
func (c *sessionCache) put(tokenHash []byte, gen uint64, userID string, expiresAt time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.watching || gen != c.gen {
		return
	}
	if len(c.entries) >= maxCachedSessions {
		clear(c.entries)
	}
	c.entries[string(tokenHash)] = cachedSession{userID: userID, expiresAt: expiresAt, cachedAt: time.Now()}
}

// SessionRevoked forgets a session.
func (c *sessionCache) SessionRevoked(tokenHash []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, string(tokenHash))
	c.gen++
}

// Watching forgets every session, and caches from now on only if on.
func (c *sessionCache) Watching(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
	c.gen++
	c.watching = on
}
