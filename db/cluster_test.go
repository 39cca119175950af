package db_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pods-dev/pods/db"
)

func TestFindBinDir(t *testing.T) {
	t.Parallel()
	dir, err := db.FindBinDir()
	if err != nil {
		t.Fatalf("FindBinDir: %v", err)
	}
	for _, name := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("FindBinDir returned %s: %v", dir, err)
		}
	}
}

func TestClusterRestart(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, nil)
	ctx := t.Context()

	// Stop before Start does nothing.
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("Stop before Start: %v", err)
	}
	start(t, c)
	if err := c.Start(ctx); err == nil {
		t.Fatal("second Start succeeded, want an error")
	}
	if got := query(t, c, "postgres", "SHOW wal_level"); got != "logical" {
		t.Fatalf("wal_level = %q, want logical", got)
	}
	if got := query(t, c, "postgres", "SHOW fsync"); got != "off" {
		t.Fatalf("fsync = %q, want off (Settings must override defaults)", got)
	}
	if err := c.CreateDatabase(ctx, "pods"); err != nil {
		t.Fatalf("CreateDatabase: %v", err)
	}
	if err := c.CreateDatabase(ctx, "pods"); err != nil {
		t.Fatalf("CreateDatabase again: %v", err)
	}
	exec(t, c, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (1)")

	// A clean stop and a restart on the same data.
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	start(t, c)
	if got := query(t, c, "pods", "SELECT count(*)::text FROM kept"); got != "1" {
		t.Fatalf("after restart, kept has %s rows, want 1", got)
	}

	// A crash with a client connected: committed rows survive it.
	exec(t, c, "INSERT INTO kept VALUES (2)")
	conn, err := pgx.Connect(ctx, c.ConnString("pods"))
	if err != nil {
		t.Fatalf("connecting: %v", err)
	}
	defer conn.Close(context.Background())
	if err := c.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	start(t, c)
	if got := query(t, c, "pods", "SELECT count(*)::text FROM kept"); got != "2" {
		t.Fatalf("after crash, kept has %s rows, want 2", got)
	}
	if err := conn.Ping(ctx); err == nil {
		t.Fatal("a connection survived Kill")
	}
}

func TestClusterStartFailureQuotesLog(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, map[string]string{"shared_buffers": "lots"})
	err := c.Start(t.Context())
	if err == nil {
		t.Fatal("Start with a bad setting succeeded")
	}
	t.Log(err)
	if !strings.Contains(err.Error(), `invalid value for parameter "shared_buffers"`) {
		t.Fatalf("Start error does not quote the log: %v", err)
	}
}

func TestClusterLongDataDir(t *testing.T) {
	t.Parallel()
	dir := tempDir(t)
	long := filepath.Join(dir, strings.Repeat("d", 60), strings.Repeat("e", 60))
	if err := os.MkdirAll(long, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // let the postgres user through
		t.Fatal(err)
	}
	c, err := db.NewCluster(db.ClusterConfig{
		DataDir:  filepath.Join(long, "data"),
		Settings: map[string]string{"fsync": "off"},
		Logger:   quietLogger(),
	})
	if err != nil {
		t.Fatalf("NewCluster: %v", err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	start(t, c)
	if got := query(t, c, "postgres", "SELECT 'ok'"); got != "ok" {
		t.Fatalf("query returned %q", got)
	}
}

func newTestCluster(t *testing.T, settings map[string]string) *db.Cluster {
	t.Helper()
	all := map[string]string{"fsync": "off", "full_page_writes": "off"}
	for k, v := range settings {
		all[k] = v
	}
	c, err := db.NewCluster(db.ClusterConfig{DataDir: tempDir(t), Settings: all, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("NewCluster: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return c
}

// tempDir returns a directory the postgres user can be given: t.TempDir()
// sits in a root-only folder.
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pods-cluster-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func start(t *testing.T, c *db.Cluster) {
	t.Helper()
	began := time.Now()
	if err := c.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("Start took %v", time.Since(began).Round(time.Millisecond))
}

func exec(t *testing.T, c *db.Cluster, sql string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), c.ConnString("pods"))
	if err != nil {
		t.Fatalf("connecting: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func query(t *testing.T, c *db.Cluster, dbname, sql string) string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), c.ConnString(dbname))
	if err != nil {
		t.Fatalf("connecting: %v", err)
	}
	defer conn.Close(context.Background())
	var s string
	if err := conn.QueryRow(t.Context(), sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}
