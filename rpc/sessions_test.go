package rpc

import (
	"testing"
	"time"
)

func TestSessionCacheNeverKeepsWhatMayBeRevoked(t *testing.T) {
	c := newSessionCache()
	hash, expires := []byte("hash"), time.Now().Add(time.Hour)
	cached := func() bool {
		_, _, ok := c.get(hash)
		return ok
	}

	_, gen, _ := c.get(hash)
	c.put(hash, gen, "ana", expires)
	if cached() {
		t.Fatal("cached while the listener is not listening")
	}

	c.Watching(true)
	_, gen, _ = c.get(hash)
	c.put(hash, gen, "ana", expires)
	if id, _, ok := c.get(hash); !ok || id != "ana" {
		t.Fatalf("got %q, %v; want ana cached", id, ok)
	}

	c.SessionRevoked(hash)
	if cached() {
		t.Fatal("a revoked session is still cached")
	}

	// A lookup that started before a revocation must not be cached.
	_, gen, _ = c.get(hash)
	c.SessionRevoked([]byte("any other"))
	c.put(hash, gen, "ana", expires)
	if cached() {
		t.Fatal("a lookup older than a revocation was cached")
	}

	_, gen, _ = c.get(hash)
	c.put(hash, gen, "ana", expires)
	c.Watching(false)
	if cached() {
		t.Fatal("still cached after the listener lost its connection")
	}

	c.Watching(true)
	_, gen, _ = c.get(hash)
	c.put(hash, gen, "ana", time.Now().Add(-time.Second))
	if cached() {
		t.Fatal("an expired session is served from the cache")
	}
}
