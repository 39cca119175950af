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

// OpenWriters opens a pool of at most n connections to pool's database
// whose sessions leave the event log's notifications to their writer
// (pods.notify = after_commit, see migration 00017): whoever commits events
// through it must notify their pods afterwards (NotifyPods), or other
// nodes do not hear of them.
func OpenWriters(ctx context.Context, pool *Pool, n int32) (*Pool, error) {
	cfg := pool.Config()
	cfg.ConnConfig.RuntimeParams["pods.notify"] = "after_commit"
	cfg.MaxConns = max(n, 1)
	writers, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening writers' pool: %w", err)
	}
	return writers, nil
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
