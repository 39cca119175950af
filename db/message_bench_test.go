package db_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pods-dev/pods/db"
	"github.com/pods-dev/pods/db/dbtest"
)

// BenchmarkMessageSend measures SendMessage's write: the insert, its
// triggers (seq, event, NOTIFY unless the wal change source turned it off)
// and the commit, on the test server, which runs with fsync off: the
// figures leave out the disk.
func BenchmarkMessageSend(b *testing.B) {
	ctx := context.Background()
	d := dbtest.New(b)
	author, err := db.UserInsert(ctx, d.Pool, db.UserInsertParams{Handle: "bench", DisplayName: "Bench", Timezone: "UTC", PasswordHash: "x"})
	if err != nil {
		b.Fatal(err)
	}
	var keys atomic.Int64
	// sender creates a pod and returns a function that writes a message to
	// it, through batcher if it is not nil.
	sender := func(pool *db.Pool, batcher *db.MessageBatcher) (send func() error, err error) {
		pod, err := db.PodCreate(ctx, pool, db.PodCreateParams{Name: "Bench", Habit: "Benchmarking", Capacity: 6, OwnerID: author.ID})
		return func() error {
			p := db.MessageSendParams{PodID: pod.ID, AuthorID: author.ID,
				IdempotencyKey: strconv.FormatInt(keys.Add(1), 10), Body: "Did my morning run, 5 km in the rain!"}
			if batcher != nil {
				return batcher.Send(ctx, p).Err
			}
			_, err := db.MessageSend(ctx, pool, p)
			return err
		}, err
	}

	// The notify change source has the events trigger NOTIFY; the wal
	// source turns that off.
	for _, source := range []struct {
		name   string
		notify bool
	}{{"notify", true}, {"no-notify", false}} {
		if err := db.UseNotify(ctx, d.Pool, "bench", time.Minute, source.notify); err != nil {
			b.Fatal(err)
		}
		name := source.name
		b.Run("serial/"+name, func(b *testing.B) {
			send, err := sender(d.Pool, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := send(); err != nil {
					b.Fatal(err)
				}
			}
		})
		// 16 writers, each in its own pod, as under load: they contend
		// only for the commit (and, with NOTIFY, the notification queue's
		// lock, which notifying commits hold in turn); then the same
		// writers through the batcher SendMessage uses, which lets
		// concurrent sends share a commit.
		for _, batched := range []bool{false, true} {
			mode := "parallel/"
			if batched {
				mode = "parallel-batched/"
			}
			b.Run(mode+name, func(b *testing.B) {
				pool, err := db.Open(ctx, d.URL, 16)
				if err != nil {
					b.Fatal(err)
				}
				defer pool.Close()
				var batcher *db.MessageBatcher
				if batched {
					batcher = db.NewMessageBatcher(pool, 4, 256, nil)
				}
				b.SetParallelism(8)
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					send, err := sender(pool, batcher)
					for err == nil && pb.Next() {
						err = send()
					}
					if err != nil {
						b.Error(err)
					}
				})
			})
		}
	}
}
