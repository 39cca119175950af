package db

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// PoolForTest returns the writers' pool.
func (w *Writers) PoolForTest() *Pool { return w.pool }

// SetNoticeWindowForTest changes how long after its release a connection's
// notifications count as the writers'.
func (w *Writers) SetNoticeWindowForTest(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.noticeWindow = d
}

// WarmUpForTest warms c up as the writers warm up each new connection.
func WarmUpForTest(ctx context.Context, c *pgxpool.Conn) error { return warmUp(ctx, c.Conn()) }
