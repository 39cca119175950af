package db_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/pods-dev/pods/db"
)

// An edit that waits for a reaction being written carries it in its event:
// the event's reactions agree with the events before it.
func TestAnEditsEventHasTheReactionsBeforeIt(t *testing.T) {
	t.Parallel()
	f := newBatchFixture(t)
	ctx := context.Background()
	m, err := db.MessageSend(ctx, f.pool, db.MessageSendParams{PodID: f.podA, AuthorID: f.ann, IdempotencyKey: "k", Body: "up at six"})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := f.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if err := db.ReactionAdd(ctx, tx, m.ID, f.bob, "🔥"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := db.MessageEdit(ctx, f.pool, db.MessageEditParams{MessageID: m.ID, UserID: f.ann, Body: "up at half past six"})
		done <- err
	}()
	// Commit the reaction once the edit waits for the pod.
	waitForLockWait(t, f.pool, `%UPDATE messages%`)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var payload []byte
	if err := f.pool.QueryRow(ctx, `SELECT payload FROM events WHERE pod_id = $1 AND kind = 'message_edited'`, f.podA).Scan(&payload); err != nil {
		t.Fatal(err)
	}
	var edited db.Message
	if err := json.Unmarshal(payload, &edited); err != nil {
		t.Fatal(err)
	}
	if len(edited.Reactions) != 1 || edited.Reactions[0].Emoji != "🔥" || edited.Body != "up at half past six" {
		t.Fatalf("edit event %s, want the new body with bob's 🔥", payload)
	}
}

// A retry of a send whose message was deleted since stores nothing, alone
// or in a batch.
func TestADeletedMessageIsNotSentAgain(t *testing.T) {
	t.Parallel()
	f := newBatchFixture(t)
	ctx := context.Background()
	send := db.MessageSendParams{PodID: f.podA, AuthorID: f.bob, IdempotencyKey: "k", Body: "wrong pod, sorry"}
	m, err := db.MessageSend(ctx, f.pool, send)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.MessageDelete(ctx, f.pool, m.ID, f.bob); err != nil {
		t.Fatal(err)
	}
	if _, err := db.MessageSend(ctx, f.pool, send); !errors.Is(err, db.ErrMessageDeleted) {
		t.Fatalf("retry alone: %v, want ErrMessageDeleted", err)
	}
	other := db.MessageSendParams{PodID: f.podA, AuthorID: f.ann, IdempotencyKey: "k", Body: "good morning"}
	results := db.MessagesSend(ctx, f.pool, []db.MessageSendParams{send, other}, nil)
	if !errors.Is(results[0].Err, db.ErrMessageDeleted) || results[1].Err != nil || !results[1].Created {
		t.Fatalf("retry in a batch: %+v", results)
	}
	var n int
	if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE author_id = $1`, f.bob).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d messages of bob (%v), want 0", n, err)
	}
	f.checkSeqs(t)
}

// TestRetryDuringDeleteStaysDeleted: a retry of a message's SendMessage
// that arrives while the message's delete is still in its transaction
// does not store the message again once the delete commits, alone or in a
// batch with another call (which is stored).
func TestRetryDuringDeleteStaysDeleted(t *testing.T) {
	t.Parallel()
	for _, batched := range []bool{false, true} {
		t.Run(fmt.Sprintf("batched=%v", batched), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newBatchFixture(t)
			sent := db.MessageSendParams{PodID: f.podA, AuthorID: f.ann, IdempotencyKey: "k", Body: "to be deleted"}
			m, err := db.MessageSend(ctx, f.pool, sent)
			if err != nil {
				t.Fatal(err)
			}
			calls := []db.MessageSendParams{sent}
			if batched {
				calls = append(calls, db.MessageSendParams{PodID: f.podB, AuthorID: f.bob, IdempotencyKey: "other", Body: "hello"})
			}
			tx, err := f.pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			// What MessageDelete writes.
			if _, err := tx.Exec(ctx, `
				WITH gone AS (DELETE FROM messages WHERE id = $1 RETURNING author_id, idempotency_key, pod_id)
				INSERT INTO deleted_message_keys (author_id, idempotency_key, pod_id)
				SELECT author_id, idempotency_key, pod_id FROM gone`, m.ID); err != nil {
				t.Fatal(err)
			}
			done := make(chan []db.SendResult, 1)
			go func() { done <- db.MessagesSend(ctx, f.pool, calls, nil) }()
			// Commit the delete once the retry waits for it.
			waitForLockWait(t, f.pool, `%INSERT INTO messages%`)
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			results := <-done
			if !errors.Is(results[0].Err, db.ErrMessageDeleted) {
				t.Errorf("retry during the delete: %+v, want ErrMessageDeleted", results[0])
			}
			if batched && (results[1].Err != nil || !results[1].Created) {
				t.Errorf("the other call: %+v", results[1])
			}
			var n int
			if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE author_id = $1 AND idempotency_key = 'k'`, f.ann).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Errorf("%d messages with the deleted key", n)
			}
			f.checkSeqs(t)
		})
	}
}
