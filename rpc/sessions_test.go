package rpc

import (
	"testing"
	"time"
)

func TestSessionCacheNeverKeepsWhatMayBeRevoked(t *testing.T) {
	c := newSessionCache()
	hash, expires := []byte("hash"), time.Now().Add(time.Hour)
	cache := func() {
		_, gen, _ := c.get(hash)
		c.put(hash, gen, "ana", expires)
	}
	cached := func() bool {
		_, _, ok := c.get(hash)
		return ok
	}

	cache()
	if cached() {
		t.Fatal("cached before any heartbeat")
	}

	c.Heard()
	cache()
	if id, _, ok := c.get(hash); !ok || id != "ana" {
		t.Fatalf("got %q, %v; want ana cached", id, ok)
	}

	c.SessionRevoked(hash)
	if cached() {
		t.Fatal("a revoked session is still cached")
	}

	// A lookup that started before a revocation must not be cached.
	_, gen, _ := c.get(hash)
	c.SessionRevoked([]byte("any other"))
	c.put(hash, gen, "ana", expires)
	if cached() {
		t.Fatal("a lookup older than a revocation was cached")
	}

	cache()
	c.Lost()
	c.Heard()
	if cached() {
		t.Fatal("still cached after revocations may have been missed")
	}

	// Without heartbeats (a listener dead but not yet noticed), the cache
	// stops answering.
	cache()
	c.heardAt = time.Now().Add(-sessionsFreshFor)
	if cached() {
		t.Fatal("answered without a recent heartbeat")
	}

	c.Heard()
	c.put(hash, c.gen, "ana", time.Now().Add(-time.Second))
	if cached() {
		t.Fatal("an expired session is served from the cache")
	}
}
