package stream

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pods-dev/pods/db"
)

// notifier announces on pods_events the pods that this node's message
// writers wrote to: their sessions leave the notification out of their
// transactions (db.OpenWriters). It sends one transaction for all the pods
// written to since its last one, so that many commits share it and none
// of them waits for the notification queue's lock.
//
// It sends on a connection of its own, whose backend PID the listener
// knows: the node's hub has its own writes already (MessagesWritten), so
// it skips its own announcements instead of reading the log for them.
type notifier struct {
	pool    *db.Pool
	appName string // the connection's application_name
	log     *slog.Logger
	pid     atomic.Uint32 // the backend PID of conn; 0 without one

	mu      sync.Mutex
	pending map[string]bool
	wake    chan struct{} // cap 1: pods are pending

	conn *pgx.Conn // only run uses it
}

func newNotifier(pool *db.Pool, appName string, log *slog.Logger) *notifier {
	return &notifier{pool: pool, appName: appName, log: log, pending: make(map[string]bool), wake: make(chan struct{}, 1)}
}

// add has the pods announced soon.
func (n *notifier) add(podIDs ...string) {
	n.mu.Lock()
	for _, id := range podIDs {
		n.pending[id] = true
	}
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// sentByMe tells whether a notification from backend pid is one of this
// notifier's announcements.
func (n *notifier) sentByMe(pid uint32) bool {
	return pid != 0 && pid == n.pid.Load()
}

// run announces pending pods until ctx ends, then once more, so that a
// node that stops cleanly leaves nothing unannounced. A failed announcement
// is retried with backoff; should the node die first, the node that
// removes it has every node catch up (db.PresenceSweep).
func (n *notifier) run(ctx context.Context) {
	defer func() {
		if n.conn != nil {
			n.conn.Close(context.WithoutCancel(ctx))
		}
	}()
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := n.send(flushCtx); err != nil {
				n.log.Warn("stream: announcing new messages on the way out", "err", err)
			}
			return
		case <-n.wake:
		}
		if err := n.send(ctx); err != nil {
			if ctx.Err() != nil {
				continue // the flush above retries
			}
			n.log.Warn("stream: announcing new messages failed", "err", err, "retry_in", backoff)
			sleep(ctx, jitter(backoff))
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
	}
}

// send announces the pending pods, connecting first if need be; on failure
// they stay pending (and wake run again) and the connection is dropped.
func (n *notifier) send(ctx context.Context) error {
	n.mu.Lock()
	podIDs := slices.Collect(maps.Keys(n.pending))
	clear(n.pending)
	n.mu.Unlock()
	if len(podIDs) == 0 {
		return nil
	}
	err := n.connect(ctx)
	if err == nil {
		err = db.NotifyPods(ctx, n.conn, podIDs)
	}
	if err != nil {
		if n.conn != nil {
			// Its PID may go to another backend now.
			n.pid.Store(0)
			n.conn.Close(context.WithoutCancel(ctx))
			n.conn = nil
		}
		n.add(podIDs...)
	}
	return err
}

func (n *notifier) connect(ctx context.Context) error {
	if n.conn != nil {
		return nil
	}
	cfg := n.pool.Config().ConnConfig
	cfg.RuntimeParams["application_name"] = n.appName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	n.conn = conn
	n.pid.Store(conn.PgConn().PID())
	return nil
}
