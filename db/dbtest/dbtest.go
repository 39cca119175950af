// Package dbtest gives each test its own Postgres database, cloned from a
// migrated template, so tests run in parallel and can commit, LISTEN and
// replicate without seeing each other.
//
// A test package opts in with
//
//	func TestMain(m *testing.M) { dbtest.Main(m) }
//
// and then calls New(t) in each test, or NewCluster(t) for a test that needs
// to restart or kill its own server.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/pods-dev/pods/db"
)

// testSettings trade durability for speed: a test server's data dies with
// it. synchronous_commit stays on: turning it off delays logical
// replication by the WAL writer's sleep.
var testSettings = map[string]string{
	"fsync":            "off",
	"full_page_writes": "off",
}

// Set once by Main, read by the tests.
var (
	serverURL string        // connection string to the server, any database
	template  string        // name of the migrated template database
	strategy  string        // how CREATE DATABASE copies the template
	admin     *pgxpool.Pool // creates and drops the tests' databases
	counter   atomic.Int64
)

// Main runs the tests of m against one Postgres server and exits with their
// result. The server is the one at TEST_DATABASE_URL if that is set (Main
// must be allowed to create databases there), else a private Cluster in a
// temporary directory, stopped and removed at the end. Main migrates a
// template database once; New clones it.
//
// When the tests pass, Main also fails the binary if goroutines that were not
// running before m.Run are still running after cleanup (goleak), so every
// package using Main checks for leaks: close your pools and stop your
// services.
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) (code int) {
	ignore := goleak.IgnoreCurrent()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	cleanup, err := setup(ctx)
	if err != nil {
		cleanup()
		fmt.Fprintf(os.Stderr, "dbtest: %v\n", err)
		return 1
	}
	code = m.Run()
	cleanup()
	if code == 0 {
		if err := goleak.Find(ignore); err != nil {
			fmt.Fprintf(os.Stderr, "dbtest: goroutines leaked: %v\n", err)
			return 1
		}
	}
	return code
}

// setup finds or starts the server and migrates the template. The returned
// cleanup undoes whatever setup did, even when setup fails halfway.
func setup(ctx context.Context) (cleanup func(), err error) {
	var undo []func()
	cleanup = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}

	template = "pods_template"
	serverURL = os.Getenv("TEST_DATABASE_URL")
	if serverURL != "" {
		// Other test binaries may share this server: keep templates apart.
		template += "_" + randomSuffix()
	} else {
		c, dir, err := startCluster(ctx)
		if dir != "" {
			undo = append(undo, func() { os.RemoveAll(dir) })
		}
		if c != nil {
			undo = append(undo, func() { stopCluster(c) })
		}
		if err != nil {
			return cleanup, err
		}
		serverURL = c.ConnString("postgres")
	}

	admin, err = db.Open(ctx, serverURL, 0)
	if err != nil {
		return cleanup, fmt.Errorf("connecting to test server: %w", err)
	}
	undo = append(undo, admin.Close)

	// FILE_COPY (Postgres 15+) copies the template's files after a
	// checkpoint instead of logging every page: as fast or faster here, and
	// it writes about 1 kB of WAL where WAL_LOG writes 4 MB, which every
	// logical replication test on the server would have to read through.
	var version int
	if err := admin.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		return cleanup, fmt.Errorf("reading server version: %w", err)
	}
	if version >= 150000 {
		strategy = " STRATEGY FILE_COPY"
	}

	if _, err := admin.Exec(ctx, "CREATE DATABASE "+ident(template)); err != nil {
		return cleanup, fmt.Errorf("creating template database: %w", err)
	}
	if os.Getenv("TEST_DATABASE_URL") != "" { // a private cluster goes whole
		undo = append(undo, func() { dropDatabase(template) })
	}
	if err := db.Migrate(ctx, withDatabase(serverURL, template), "up"); err != nil {
		return cleanup, fmt.Errorf("migrating template database: %w", err)
	}
	// Nobody may connect to the template from now on, or cloning it fails.
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+ident(template)+" WITH ALLOW_CONNECTIONS false"); err != nil {
		return cleanup, fmt.Errorf("locking template database: %w", err)
	}
	return cleanup, nil
}

// New creates a database for t cloned from the migrated template, and drops
// it (WITH (FORCE), whoever is still connected) when t ends. Its Pool is
// closed then too. It requires TestMain to call Main.
func New(t testing.TB) *Database {
	t.Helper()
	if admin == nil {
		t.Fatal("dbtest: New needs func TestMain(m *testing.M) { dbtest.Main(m) }")
	}
	name := fmt.Sprintf("t_%d_%s", counter.Add(1), randomSuffix())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+ident(name)+" TEMPLATE "+ident(template)+strategy); err != nil {
		t.Fatalf("dbtest: cloning template: %v", err)
	}
	t.Cleanup(func() { dropDatabase(name) })
	return open(t, withDatabase(serverURL, name))
}

// Database is a test's own database.
type Database struct {
	// URL is the connection string of the database.
	URL string
	// Pool is connected to the database and closed when the test ends.
	Pool *pgxpool.Pool
}

// NewCluster starts a private Postgres server for t alone, for tests that
// restart or kill it, and returns it with a migrated database "pods" on it.
// The server is stopped and its files removed when t ends; the Database's
// Pool is closed before that. It skips t if no Postgres binaries are
// installed.
func NewCluster(t testing.TB) (*db.Cluster, *Database) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, dir, err := startCluster(ctx)
	if dir != "" {
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	if c != nil {
		t.Cleanup(func() { stopCluster(c) })
	}
	if errors.Is(err, db.ErrNoPostgres) {
		t.Skipf("dbtest: %v", err)
	}
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	if err := c.CreateDatabase(ctx, "pods"); err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	url := c.ConnString("pods")
	if err := db.Migrate(ctx, url, "up"); err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	return c, open(t, url)
}

// startCluster starts a private server in a new temporary directory. It
// returns the directory and the cluster as soon as they exist, so that the
// caller can clean them up whatever happened next.
func startCluster(ctx context.Context) (*db.Cluster, string, error) {
	// Not t.TempDir(): it sits in a folder the postgres user cannot enter.
	dir, err := os.MkdirTemp("", "pods-test-pg-")
	if err != nil {
		return nil, "", fmt.Errorf("creating cluster directory: %w", err)
	}
	c, err := db.NewCluster(db.ClusterConfig{
		DataDir:  dir,
		Settings: testSettings,
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return nil, dir, err
	}
	if err := c.Start(ctx); err != nil {
		return nil, dir, err
	}
	return c, dir, nil
}

func stopCluster(c *db.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "dbtest: %v\n", err)
	}
}

// open connects a pool to url for t and closes it when t ends.
func open(t testing.TB, url string) *Database {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := db.Open(ctx, url, 0)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	t.Cleanup(pool.Close)
	return &Database{URL: url, Pool: pool}
}

func dropDatabase(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// WITH (FORCE) refuses a database whose replication slot is in use, so
	// first end every session on it, walsenders included, waiting up to 5 s
	// for each to go.
	_, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
		WHERE datname = $1 AND pid <> pg_backend_pid()`, name)
	if err == nil {
		_, err = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)")
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "dbtest: dropping database %s: %v\n", name, err)
	}
}

// withDatabase returns connString with its database set to name. It accepts
// both URLs and keyword/value strings.
func withDatabase(connString, name string) string {
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		u, err := url.Parse(connString)
		if err == nil {
			u.Path = "/" + name
			u.RawPath = ""
			return u.String()
		}
	}
	// In keyword/value strings the last setting wins.
	return connString + " dbname=" + name
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
