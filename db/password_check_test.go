package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/pods-dev/pods/db"
	"github.com/pods-dev/pods/db/dbtest"
)

// A handle's bucket allows burst checks, then one per refill interval; a
// refund gives one back; a refusal writes nothing; buckets full again are
// pruned, others kept.
func TestPasswordCheckBuckets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := dbtest.New(t)
	const perSecond, burst = 0.001, 3 // one check per 1,000 s
	take := func(handle string) bool {
		t.Helper()
		taken, err := db.PasswordCheckTake(ctx, d.Pool, handle, perSecond, burst)
		if err != nil {
			t.Fatal(err)
		}
		return taken
	}
	backdate := func(handle string, seconds int) {
		t.Helper()
		if _, err := d.Pool.Exec(ctx, `UPDATE password_checks SET updated_at = updated_at - make_interval(secs => $2)
			WHERE handle = $1`, handle, seconds); err != nil {
			t.Fatal(err)
		}
	}
	for i := range burst {
		if !take("ann") {
			t.Fatalf("check %d of a new handle refused", i+1)
		}
	}
	var xmin string
	if err := d.Pool.QueryRow(ctx, `SELECT xmin::text FROM password_checks WHERE handle = 'ann'`).Scan(&xmin); err != nil {
		t.Fatal(err)
	}
	if take("ann") {
		t.Fatal("a check beyond the burst allowed")
	}
	var written bool
	if err := d.Pool.QueryRow(ctx, `SELECT xmin::text <> $1 FROM password_checks WHERE handle = 'ann'`, xmin).Scan(&written); err != nil {
		t.Fatal(err)
	}
	if written {
		t.Error("a refused check wrote its bucket")
	}
	if err := db.PasswordCheckRefund(ctx, d.Pool, "ann", burst); err != nil {
		t.Fatal(err)
	}
	if !take("ann") || take("ann") {
		t.Fatal("a refund did not give back exactly one check")
	}
	backdate("ann", 2_000) // two refill intervals
	if !take("ann") || !take("ann") || take("ann") {
		t.Fatal("two refill intervals did not give exactly two checks")
	}

	if !take("bob") {
		t.Fatal("another handle's check refused")
	}
	backdate("bob", 3_001) // untouched for as long as an empty bucket takes to fill
	pruned, err := db.PrunePasswordChecks(ctx, d.Pool, burst/perSecond*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	if err := d.Pool.QueryRow(ctx, `SELECT array_agg(handle) FROM password_checks`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if pruned != 1 || len(left) != 1 || left[0] != "ann" {
		t.Errorf("pruned %d, left %v; want 1 pruned, [ann] left", pruned, left)
	}
}
