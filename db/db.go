// Package db holds all of Pods' SQL: the migrations, typed query functions,
// the translation of driver errors, and the launcher of a private Postgres.
//
// Other packages call functions such as MessageInsert(ctx, q, params), where
// q is a Querier: a pool or a transaction, so callers can compose one
// transaction out of several calls. pgx types do not leak out of this package
// except through Querier itself.
package db

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Errors returned by the query functions, whatever the driver said.
var (
	// ErrNotFound means no row matched.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists means a unique constraint refused the write.
	ErrAlreadyExists = errors.New("already exists")
)

// Querier is satisfied by *pgxpool.Pool, *pgxpool.Conn and pgx.Tx.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Pool is the connection pool the server runs on.
type Pool = pgxpool.Pool

// Tx is a database transaction.
type Tx = pgx.Tx

// Open connects a pool of at most maxConns connections (0: pgx's default,
// the larger of 4 and the CPU count) to connString and checks that the
// database answers.
func Open(ctx context.Context, connString string, maxConns int32) (*Pool, error) {
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("parsing database url: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pinging database: %w", err)
	}
	return pool, nil
}

// Writers is the pool of the message writers (MessageBatcher), which
// knows the backend PIDs of its connections while they write: a node's
// listener skips the notifications they send, as the node has those writes
// in hand (stream.Hub.MessagesWritten).
type Writers struct {
	pool *Pool
	// noticeWindow is how long after its release a connection's
	// notifications still count as its writer's.
	noticeWindow time.Duration

	mu    sync.Mutex
	conns map[uint32]*writerConn // by backend PID

	// filling lets one fill run at a time: two, each holding some of the
	// connections and waiting for the rest, would wait for each other.
	filling sync.Mutex
}

type writerConn struct {
	conn     *pgx.Conn
	busy     bool
	released time.Time
}

// writerNoticeWindow is Writers.noticeWindow: a commit's notification
// reaches a listener within milliseconds, and a connection idle for
// longer may have lost its backend unnoticed (killed, timed out), whose
// PID another session may then get.
const writerNoticeWindow = 5 * time.Second

// OpenWriters opens a pool of at most n connections to pool's database for
// the message writers; each is warmed up when opened, and logger learns
// of a warm-up that failed. The connections open as writes need them, or
// all at once at each Forget.
func OpenWriters(ctx context.Context, pool *Pool, n int32, logger *slog.Logger) (*Writers, error) {
	w := &Writers{noticeWindow: writerNoticeWindow, conns: make(map[uint32]*writerConn)}
	cfg := pool.Config()
	cfg.MaxConns = max(n, 1)
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		if err := warmUp(ctx, c); err != nil {
			if c.IsClosed() {
				return err
			}
			logger.Warn("message writer: warm-up failed; the connection's first write will be slow", "err", err)
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		w.conns[c.PgConn().PID()] = &writerConn{conn: c}
		return nil
	}
	cfg.PrepareConn = func(_ context.Context, c *pgx.Conn) (bool, error) {
		w.update(c, func(wc *writerConn) { wc.busy = true })
		return true, nil
	}
	cfg.AfterRelease = func(c *pgx.Conn) bool {
		w.update(c, func(wc *writerConn) { wc.busy, wc.released = false, time.Now() })
		return true
	}
	cfg.BeforeClose = func(c *pgx.Conn) {
		w.mu.Lock()
		defer w.mu.Unlock()
		if wc := w.conns[c.PgConn().PID()]; wc != nil && wc.conn == c {
			delete(w.conns, c.PgConn().PID())
		}
	}
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening the writers' pool: %w", err)
	}
	w.pool = p
	return w, nil
}

// warmUp sends a message on c in a transaction it rolls back, alone and in
// a batch, so that the connection's first real write does not wait while
// its backend loads the catalog, compiles the triggers and plans the
// statements (7–17 ms, against 0.5 ms once warm). Nothing it writes is
// seen by anyone or kept, and it waits at most a second for a lock (a
// migration's, say). An error leaves c cold but usable, unless closed.
func warmUp(ctx context.Context, c *pgx.Conn) error {
	tx, err := c.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // what matters is that nothing is kept
	if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '1s'; SET LOCAL statement_timeout = '5s'`); err != nil {
		return err
	}
	name := "pods-warm-up-" + rand.Text()
	u, err := UserInsert(ctx, tx, UserInsertParams{Handle: name, DisplayName: name, Timezone: "UTC"})
	if err != nil {
		return err
	}
	var podID string
	if err := tx.QueryRow(ctx, `INSERT INTO pods (name, habit, invite_code, owner_id)
			VALUES ($1, $1, $1, $2) RETURNING id`, name, u.ID).Scan(&podID); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO memberships (pod_id, user_id, role) VALUES ($1, $2, $3)`,
		podID, u.ID, RoleOwner); err != nil {
		return err
	}
	p := MessageSendParams{PodID: podID, AuthorID: u.ID, IdempotencyKey: name, Body: name}
	if r := messageSend(ctx, tx, p); r.Err != nil {
		return r.Err
	}
	p2 := p
	p.IdempotencyKey, p2.IdempotencyKey = name+"-1", name+"-2"
	_, err = insertMessages(ctx, tx, []MessageSendParams{p, p2})
	return err
}

// update changes what w knows of connection c, if it knows c.
func (w *Writers) update(c *pgx.Conn, change func(*writerConn)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if wc := w.conns[c.PgConn().PID()]; wc != nil && wc.conn == c {
		change(wc)
	}
}

// Owns tells whether a notification from backend pid is one of the
// writers': pid is the backend of a connection of theirs that is writing
// or was released within the notice window.
func (w *Writers) Owns(pid uint32) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	wc := w.conns[pid]
	return wc != nil && (wc.busy || time.Since(wc.released) < w.noticeWindow)
}

// Forget makes w own no backend of its current connections, and closes
// them (those in use once released); as many new ones are opened and
// warmed up at once, in the background. After a reconnect (Postgres may
// have restarted and be handing out the PIDs of the writers' dead
// backends), nothing from before passes for theirs.
func (w *Writers) Forget() {
	w.mu.Lock()
	clear(w.conns)
	w.mu.Unlock()
	w.pool.Reset()
	go w.fill()
}

// fill opens the pool's connections now, rather than at the next writes:
// each new one is warmed up before it is handed out. A connection opened
// across a later Forget is closed once released; the next round opens
// its replacement.
func (w *Writers) fill() {
	w.filling.Lock()
	defer w.filling.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := w.pool.Config().MaxConns
	for range 3 {
		if w.pool.Stat().IdleConns() >= n || ctx.Err() != nil {
			return
		}
		// All held at once: a connection released before another call
		// acquires would be handed out again instead of a new one opened.
		var wg sync.WaitGroup
		held := make(chan *pgxpool.Conn, n)
		for range n {
			wg.Go(func() {
				if c, err := w.pool.Acquire(ctx); err == nil {
					held <- c
				}
			})
		}
		wg.Wait()
		close(held)
		for c := range held {
			c.Release()
		}
	}
}

// NewMessageBatcher returns a batcher writing on w, with as many writers as
// w has connections (see the package function).
func (w *Writers) NewMessageBatcher(maxBatch int, written func(stored []Message, failedPods []string)) *MessageBatcher {
	return NewMessageBatcher(w.pool, int(w.pool.Config().MaxConns), maxBatch, written)
}

// Close closes the pool.
func (w *Writers) Close() { w.pool.Close() }

// InTx runs fn in a transaction on pool, committing if fn returns nil.
func InTx(ctx context.Context, pool *Pool, fn func(tx Tx) error) error {
	return pgx.BeginFunc(ctx, pool, fn)
}

// translate maps driver errors onto this package's errors, wrapping the
// result with what was being done.
func translate(err error, doing string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: %w", doing, ErrNotFound)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return fmt.Errorf("%s: %w (%s)", doing, ErrAlreadyExists, pgErr.ConstraintName)
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// uniqueViolation returns the name of the unique constraint err violated,
// or "" if err is not a unique violation.
func uniqueViolation(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return pgErr.ConstraintName
	}
	return ""
}
