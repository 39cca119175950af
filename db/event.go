package db

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// Event is one row of a pod's event log.
type Event struct {
	PodID     string
	Seq       int64
	Kind      string
	MessageID *string
	UserID    *string
	// Payload is the JSON snapshot the trigger stored.
	Payload   []byte
	CreatedAt time.Time
}

// Event kinds, as the triggers write them.
const (
	EventMessageCreated  = "message_created"
	EventMessageEdited   = "message_edited"
	EventMessageDeleted  = "message_deleted"
	EventReactionAdded   = "reaction_added"
	EventReactionRemoved = "reaction_removed"
	EventMemberJoined    = "member_joined"
	EventMemberLeft      = "member_left"
	EventOwnerChanged    = "owner_changed"
)

const eventColumns = `e.pod_id, e.seq, e.kind, e.message_id, e.user_id, e.payload, e.created_at`

func scanEvent(row pgx.CollectableRow) (Event, error) {
	var e Event
	err := row.Scan(&e.PodID, &e.Seq, &e.Kind, &e.MessageID, &e.UserID, &e.Payload, &e.CreatedAt)
	return e, err
}

// EventsAfter returns up to limit events of a pod with a seq above after, in
// seq order.
func EventsAfter(ctx context.Context, q Querier, podID string, after int64, limit int) ([]Event, error) {
	rows, err := q.Query(ctx, `SELECT `+eventColumns+` FROM events e
		WHERE e.pod_id = $1 AND e.seq > $2 ORDER BY e.seq LIMIT $3`, podID, after, limit)
	if err != nil {
		return nil, translate(err, "reading events")
	}
	events, err := pgx.CollectRows(rows, scanEvent)
	return events, translate(err, "reading events")
}

// PodCursor is a position in a pod's log.
type PodCursor struct {
	PodID string
	After int64
}

// EventBatch is what EventsAfterEach found for one pod.
type EventBatch struct {
	PodID string
	// Gone means the pod no longer exists.
	Gone bool
	// Events after the cursor, in seq order, at most the limit.
	Events []Event
}

// EventsAfterEach reads the events after each cursor in one round trip, at
// most limit per pod, and tells which pods are gone.
func EventsAfterEach(ctx context.Context, q Querier, cursors []PodCursor, limit int) ([]EventBatch, error) {
	ids := make([]string, len(cursors))
	afters := make([]int64, len(cursors))
	for i, c := range cursors {
		ids[i], afters[i] = c.PodID, c.After
	}
	rows, err := q.Query(ctx, `
		SELECT c.pod_id, p.id IS NULL, `+eventColumns+`
		FROM unnest($1::uuid[], $2::bigint[]) AS c(pod_id, after)
		LEFT JOIN pods p ON p.id = c.pod_id
		LEFT JOIN LATERAL (
			SELECT * FROM events x WHERE x.pod_id = c.pod_id AND x.seq > c.after ORDER BY x.seq LIMIT $3
		) e ON p.id IS NOT NULL
		ORDER BY c.pod_id, e.seq`, ids, afters, limit)
	if err != nil {
		return nil, translate(err, "reading events")
	}
	defer rows.Close()
	var batches []EventBatch
	for rows.Next() {
		var podID string
		var gone bool
		var e struct {
			PodID     *string
			Seq       *int64
			Kind      *string
			MessageID *string
			UserID    *string
			Payload   []byte
			CreatedAt *time.Time
		}
		if err := rows.Scan(&podID, &gone, &e.PodID, &e.Seq, &e.Kind, &e.MessageID, &e.UserID, &e.Payload, &e.CreatedAt); err != nil {
			return nil, translate(err, "scanning event")
		}
		if len(batches) == 0 || batches[len(batches)-1].PodID != podID {
			batches = append(batches, EventBatch{PodID: podID, Gone: gone})
		}
		if e.Seq != nil {
			b := &batches[len(batches)-1]
			b.Events = append(b.Events, Event{PodID: podID, Seq: *e.Seq, Kind: *e.Kind, MessageID: e.MessageID,
				UserID: e.UserID, Payload: e.Payload, CreatedAt: *e.CreatedAt})
		}
	}
	return batches, translate(rows.Err(), "reading events")
}

// LastSeqs returns the last seq of each pod that exists.
func LastSeqs(ctx context.Context, q Querier, podIDs []string) (map[string]int64, error) {
	rows, err := q.Query(ctx, `SELECT id, last_seq FROM pods WHERE id = ANY($1)`, podIDs)
	if err != nil {
		return nil, translate(err, "reading last seqs")
	}
	defer rows.Close()
	seqs := make(map[string]int64, len(podIDs))
	for rows.Next() {
		var id string
		var seq int64
		if err := rows.Scan(&id, &seq); err != nil {
			return nil, translate(err, "scanning last seq")
		}
		seqs[id] = seq
	}
	return seqs, translate(rows.Err(), "reading last seqs")
}

// JoinedSeqs returns, for each pod userID is a member of, the seq of their
// memberJoined event.
func JoinedSeqs(ctx context.Context, q Querier, userID string) (map[string]int64, error) {
	rows, err := q.Query(ctx, `SELECT pod_id, joined_seq FROM memberships WHERE user_id = $1`, userID)
	if err != nil {
		return nil, translate(err, "reading memberships")
	}
	defer rows.Close()
	seqs := make(map[string]int64)
	for rows.Next() {
		var id string
		var seq int64
		if err := rows.Scan(&id, &seq); err != nil {
			return nil, translate(err, "scanning membership")
		}
		seqs[id] = seq
	}
	return seqs, translate(rows.Err(), "reading memberships")
}

// MemberAfter reports whether userID was a member of podID right after the
// event seq: whether their last memberJoined or memberLeft event up to seq
// is a memberJoined.
func MemberAfter(ctx context.Context, q Querier, podID, userID string, seq int64) (bool, error) {
	var kind string
	err := q.QueryRow(ctx, `SELECT kind FROM events
		WHERE pod_id = $1 AND user_id = $2 AND kind IN ('member_joined', 'member_left') AND seq <= $3
		ORDER BY seq DESC LIMIT 1`, podID, userID, seq).Scan(&kind)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return kind == "member_joined", translate(err, "reading memberships")
}
