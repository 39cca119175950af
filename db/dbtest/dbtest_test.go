package dbtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/pods-dev/pods/db/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func TestNewIsolatesDatabases(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	a, b := dbtest.New(t), dbtest.New(t)
	if a.URL == b.URL {
		t.Fatalf("two tests share database %s", a.URL)
	}

	// Both are migrated.
	for _, d := range []*dbtest.Database{a, b} {
		if !tableExists(t, d, "messages") {
			t.Fatalf("%s is not migrated: no table messages", d.URL)
		}
	}
	// What one commits, the other does not see.
	if _, err := a.Pool.Exec(ctx, "CREATE TABLE only_in_a (n int)"); err != nil {
		t.Fatal(err)
	}
	if !tableExists(t, a, "only_in_a") {
		t.Fatal("table only_in_a missing from a")
	}
	if tableExists(t, b, "only_in_a") {
		t.Fatal("table created in a is visible in b")
	}
}

func TestNewCluster(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, d := dbtest.NewCluster(t)
	if !tableExists(t, d, "messages") {
		t.Fatal("cluster database is not migrated")
	}
	if _, err := d.Pool.Exec(ctx, "CREATE TABLE kept (n int)"); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	// The pool drops its dead connections and dials again; the first
	// attempts may still pick one of them up.
	var err error
	for range 5 {
		if err = d.Pool.Ping(ctx); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("pool does not reconnect after a restart: %v", err)
	}
	if !tableExists(t, d, "kept") {
		t.Fatal("table kept lost across a restart")
	}
}

// TestNewTiming logs what New costs each test, cleanup included.
func TestNewTiming(t *testing.T) {
	const n = 10
	began := time.Now()
	for range n {
		t.Run("", func(t *testing.T) { dbtest.New(t) })
	}
	t.Logf("New and its cleanup: %v each", (time.Since(began) / n).Round(100*time.Microsecond))
}

func tableExists(t *testing.T, d *dbtest.Database, name string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	var exists bool
	err := d.Pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", name).Scan(&exists)
	if err != nil {
		t.Fatalf("checking table %s: %v", name, err)
	}
	return exists
}
