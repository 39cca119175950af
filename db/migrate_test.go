package db_test

import (
	"context"
	"testing"

	"github.com/pods-dev/pods/db"
	"github.com/pods-dev/pods/db/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func TestMigrateDownAndUpAgain(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	tables := func() int {
		var n int
		err := d.Pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables
			WHERE table_schema = 'public' AND table_name <> 'goose_db_version'`).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	version := func() int64 {
		var v int64
		err := d.Pool.QueryRow(ctx, `SELECT max(version_id) FROM goose_db_version WHERE is_applied`).Scan(&v)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	migrated, latest := tables(), version()
	if migrated < 8 {
		t.Fatalf("after up: %d tables, want at least 8", migrated)
	}
	if err := db.Migrate(ctx, d.URL, "down"); err != nil {
		t.Fatalf("down: %v", err)
	}
	if got := version(); got != latest-1 {
		t.Fatalf("after one down: version %d, want %d", got, latest-1)
	}
	if err := db.Migrate(ctx, d.URL, "reset"); err != nil {
		t.Fatalf("reset: %v", err)
	}
	if got := tables(); got != 0 {
		t.Fatalf("after reset: %d tables left", got)
	}
	if err := db.Migrate(ctx, d.URL, "up"); err != nil {
		t.Fatalf("up again: %v", err)
	}
	if got := tables(); got != migrated {
		t.Fatalf("after up again: %d tables, want %d", got, migrated)
	}
	if err := db.Migrate(ctx, d.URL, "status"); err != nil {
		t.Fatalf("status: %v", err)
	}
	if err := db.Migrate(ctx, d.URL, "sideways"); err == nil {
		t.Fatal("unknown command: no error")
	}
}
