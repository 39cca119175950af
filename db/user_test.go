package db_test

import (
	"context"
	"errors"
	"testing"

	"github.com/pods-dev/pods/db"
	"github.com/pods-dev/pods/db/dbtest"
)

// A time zone the database does not know (Go's zone data may be newer than
// the server's) is refused, and nothing is written: the coach computes
// reminders in the database.
func TestUserInsertRefusesAZoneTheDatabaseDoesNotKnow(t *testing.T) {
	t.Parallel()
	d := dbtest.New(t)
	ctx := context.Background()
	_, err := db.UserInsert(ctx, d.Pool, db.UserInsertParams{Handle: "zed", DisplayName: "Zed", Timezone: "Mars/Olympus", PasswordHash: "x"})
	if !errors.Is(err, db.ErrUnknownTimezone) {
		t.Fatalf("err = %v, want ErrUnknownTimezone", err)
	}
	if _, err := db.UserByHandle(ctx, d.Pool, "zed"); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("the user was stored: %v", err)
	}
	u, err := db.UserInsert(ctx, d.Pool, db.UserInsertParams{Handle: "zed", DisplayName: "Zed", Timezone: "Asia/Kolkata", PasswordHash: "x"})
	if err != nil || u.Timezone != "Asia/Kolkata" {
		t.Fatalf("a known zone: %+v, %v", u, err)
	}
}
