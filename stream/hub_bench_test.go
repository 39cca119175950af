package stream

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pods-dev/pods/db"
)

// BenchmarkFanOut measures one fetch round of the hub without the
// database: each dirty pod's new messageCreated events converted once and
// queued to each of its subscribers, whose queues are then emptied.
func BenchmarkFanOut(b *testing.B) {
	for _, tc := range []struct{ pods, subs, events int }{
		{1, 5, 1},    // one message in a busy pod
		{100, 5, 1},  // a round under load: many pods dirty at once
		{1, 5, 100},  // a pod catching up
		{1, 1000, 1}, // one pod, many streams (e.g. many tabs of few users)
	} {
		b.Run(fmt.Sprintf("pods=%d/subs=%d/events=%d", tc.pods, tc.subs, tc.events), func(b *testing.B) {
			h := NewHub(Config{})
			var subs []*subscriber
			batches := make([]db.EventBatch, tc.pods)
			since := make(map[string]time.Time, tc.pods)
			for i := range batches {
				podID := uuid.NewString()
				ps := &podState{known: true, subs: make(map[*subscriber]bool)}
				for range tc.subs {
					s := newSubscriber("", 1, func(error) {})
					ps.subs[s] = true
					subs = append(subs, s)
				}
				h.pods[podID] = ps
				since[podID] = time.Now()
				batches[i] = db.EventBatch{PodID: podID, Events: messageEvents(b, podID, tc.events)}
			}
			b.ReportAllocs()
			for b.Loop() {
				for _, ps := range h.pods {
					ps.lastSeq = 0 // the same events are new again
				}
				h.fanOut(batches, since)
				for _, s := range subs {
					s.take(nil)
					<-s.wake
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*tc.pods*tc.subs*tc.events), "ns/delivery")
		})
	}
}

// messageEvents returns n messageCreated events of a pod, with seqs from 1,
// as the trigger writes them.
func messageEvents(b *testing.B, podID string, n int) []db.Event {
	events := make([]db.Event, n)
	for i := range events {
		seq := int64(i + 1)
		m := db.Message{ID: uuid.NewString(), PodID: podID, Seq: seq, AuthorID: uuid.NewString(),
			IdempotencyKey: uuid.NewString(), Body: "Did my morning run, 5 km in the rain!", CreatedAt: time.Now()}
		payload, err := json.Marshal(m)
		if err != nil {
			b.Fatal(err)
		}
		events[i] = db.Event{PodID: podID, Seq: seq, Kind: db.EventMessageCreated, MessageID: &m.ID,
			UserID: &m.AuthorID, Payload: payload, CreatedAt: m.CreatedAt}
	}
	return events
}
