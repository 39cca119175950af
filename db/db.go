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
	"errors"
	"fmt"
	"sync"

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
// knows its connections' backend PIDs: a node's listener skips the
// notifications they send, as the node has those writes in hand.
type Writers struct {
	*Pool

	mu   sync.Mutex
	pids map[uint32]bool
}

// OpenWriters opens a pool of at most n connections to pool's database for
// the message writers.
func OpenWriters(ctx context.Context, pool *Pool, n int32) (*Writers, error) {
	w := &Writers{pids: make(map[uint32]bool)}
	cfg := pool.Config()
	cfg.MaxConns = max(n, 1)
	cfg.AfterConnect = func(_ context.Context, c *pgx.Conn) error {
		w.mu.Lock()
		w.pids[c.PgConn().PID()] = true
		w.mu.Unlock()
		return nil
	}
	// A connection that broke, or whose write's outcome pgx could not
	// learn, is closed: its PID is no longer the writers'.
	cfg.BeforeClose = func(c *pgx.Conn) {
		w.mu.Lock()
		delete(w.pids, c.PgConn().PID())
		w.mu.Unlock()
	}
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening the writers' pool: %w", err)
	}
	w.Pool = p
	return w, nil
}

// Owns tells whether pid is the backend of one of the writers' open
// connections.
func (w *Writers) Owns(pid uint32) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pids[pid]
}

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
