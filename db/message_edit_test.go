package db_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

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
	for waiting := false; !waiting; time.Sleep(5 * time.Millisecond) {
		if err := f.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%UPDATE messages%')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
	}
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
