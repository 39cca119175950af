package convert_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pods-dev/pods/db"
	"github.com/pods-dev/pods/rpc/convert"
)

// BenchmarkEvent measures converting rows of the event log, which the hub
// does once per event (not per stream), and a stream's catch-up once per
// event it sends.
func BenchmarkEvent(b *testing.B) {
	podID, userID := uuid.NewString(), uuid.NewString()
	at := time.Date(2025, 3, 1, 7, 30, 0, 0, time.UTC)
	message, err := json.Marshal(db.Message{ID: uuid.NewString(), PodID: podID, Seq: 42, AuthorID: userID,
		IdempotencyKey: uuid.NewString(), Body: "Did my morning run, 5 km in the rain!", CreatedAt: at})
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		kind    string
		payload string
	}{
		{db.EventMessageCreated, string(message)},
		{db.EventReactionAdded, `{"message_id": "` + uuid.NewString() + `", "user_id": "` + userID + `", "emoji": "🔥"}`},
		{db.EventMemberJoined, `{"user_id": "` + userID + `", "handle": "ada", "display_name": "Ada", "timezone": "Europe/Berlin",
			"coach": false, "role": "member", "joined_at": "2025-03-01T07:30:00.123456+00:00"}`},
	} {
		e := db.Event{PodID: podID, Seq: 42, Kind: tc.kind, Payload: []byte(tc.payload), CreatedAt: at}
		b.Run(tc.kind, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := convert.Event(e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
