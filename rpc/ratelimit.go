package rpc

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/time/rate"

	"github.com/pods-dev/pods/db"
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

// passwordThrottle slows password guessing down per bucket (a handle's,
// or a known device's: see authService.passwordBucket), whatever address
// and node it comes from: its token buckets are in the database, shared by
// every node and kept across restarts. A check that passes gives its token
// back, so that only failed checks count.
type passwordThrottle struct {
	pool      *db.Pool
	perSecond float64
	burst     int
	logger    *slog.Logger
	lastPrune atomic.Int64 // unix nanoseconds
}

// take takes a token from bucket, or returns resource_exhausted.
func (p *passwordThrottle) take(ctx context.Context, bucket string) error {
	p.prune(ctx)
	taken, err := db.PasswordCheckTake(ctx, p.pool, bucket, p.perSecond, p.burst)
	if err != nil {
		return toConnect(ctx, p.logger, err)
	}
	if !taken {
		return errTooManyRequests
	}
	return nil
}

// refund gives back the token of a check that passed. A refund that fails
// is logged: the owner has one guess less for a while.
func (p *passwordThrottle) refund(ctx context.Context, bucket string) {
	if err := db.PasswordCheckRefund(ctx, p.pool, bucket, p.burst); err != nil {
		p.logger.Warn("password check: refund failed", "err", err)
	}
}

// prune deletes the buckets that are full again, at most once per refill
// time per node, so that the table follows the buckets tried lately. It
// runs to its end even if the caller gives up.
func (p *passwordThrottle) prune(ctx context.Context) {
	now := time.Now().UnixNano()
	refill := time.Duration(float64(p.burst) / p.perSecond * float64(time.Second))
	last := p.lastPrune.Load()
	if now-last < int64(refill) || !p.lastPrune.CompareAndSwap(last, now) {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := db.PrunePasswordChecks(ctx, p.pool, refill); err != nil {
		p.logger.Warn("password check: prune failed", "err", err)
	}
}
