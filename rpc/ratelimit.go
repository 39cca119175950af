package rpc

import (
	"errors"
	"sync"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/time/rate"
)

// rateLimiter keeps one token bucket per key (a user, or a user and pod).
// Buckets idle long enough to be full again are dropped, so memory follows
// the number of active writers.
type rateLimiter struct {
	limit rate.Limit
	burst int

	mu        sync.Mutex
	buckets   map[string]*rate.Limiter
	lastSweep time.Time
}

func newRateLimiter(perSecond float64, burst int) *rateLimiter {
	return &rateLimiter{limit: rate.Limit(perSecond), burst: burst, buckets: make(map[string]*rate.Limiter)}
}

var errTooManyRequests = connect.NewError(connect.CodeResourceExhausted, errors.New("too many requests: slow down"))

// allow takes a token from key's bucket, or returns resource_exhausted.
func (r *rateLimiter) allow(key string) error {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	refill := time.Duration(float64(r.burst) / float64(r.limit) * float64(time.Second))
	if now.Sub(r.lastSweep) > refill {
		for k, b := range r.buckets {
			if b.TokensAt(now) >= float64(r.burst) {
				delete(r.buckets, k)
			}
		}
		r.lastSweep = now
	}
	b, ok := r.buckets[key]
	if !ok {
		b = rate.NewLimiter(r.limit, r.burst)
		r.buckets[key] = b
	}
	if !b.AllowN(now, 1) {
		return errTooManyRequests
	}
	return nil
}
