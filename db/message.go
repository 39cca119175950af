package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// Message is a chat message.
type Message struct {
	ID             string     `json:"id"`
	PodID          string     `json:"pod_id"`
	Seq            int64      `json:"seq"`
	AuthorID       string     `json:"author_id"`
	IdempotencyKey string     `json:"idempotency_key"`
	Body           string     `json:"body"`
	Humor          bool       `json:"humor"`
	CreatedAt      time.Time  `json:"created_at"`
	EditedAt       *time.Time `json:"edited_at"`
	// Reactions by emoji, in the order each emoji was first used. Filled by
	// MessagesList, MessageEdit and LoadReactions, and in messageEdited
	// events.
	Reactions []ReactionSummary `json:"reactions,omitempty"`
	// CoachTrigger is why the coach wrote it (JobQuiet…): filled by
	// MessagesList for the coach's messages.
	CoachTrigger string `json:"-"`
}

// ReactionSummary is everyone who reacted to a message with one emoji.
type ReactionSummary struct {
	Emoji   string   `json:"emoji"`
	UserIDs []string `json:"user_ids"`
}

// ErrIdempotencyMismatch means the author used the idempotency key before
// for a different message.
var ErrIdempotencyMismatch = errors.New("idempotency key already used for something else")

// ErrMessageDeleted means the message the author sent with this idempotency
// key was deleted since: a retry does not store it again.
var ErrMessageDeleted = errors.New("the message sent with this idempotency key was deleted")

const messageColumns = `id, pod_id, seq, author_id, idempotency_key, body, humor, created_at, edited_at`

func scanMessage(row pgx.Row) (Message, error) {
	var m Message
	err := row.Scan(&m.ID, &m.PodID, &m.Seq, &m.AuthorID, &m.IdempotencyKey, &m.Body, &m.Humor, &m.CreatedAt, &m.EditedAt)
	return m, err
}

// MessageSendParams are the fields of a new message.
type MessageSendParams struct {
	PodID          string
	AuthorID       string
	IdempotencyKey string
	Body           string
	Humor          bool
}

// MessageSend stores a message from a member of the pod. If the author
// already sent a message with the same idempotency key, it returns that
// message instead, or ErrIdempotencyMismatch if it differs in pod, body or
// humor, or ErrMessageDeleted if it was deleted. An unknown pod or a
// non-member is ErrNotFound.
//
// The insert runs first because it is what nearly every call does; a
// duplicate key fails it as a whole (the seq and event the trigger took roll
// back with it), and the stored message is read then.
func MessageSend(ctx context.Context, q Querier, p MessageSendParams) (Message, error) {
	r := messageSend(ctx, q, p)
	return r.Message, r.Err
}

// messageSend is MessageSend, telling whether the message was created.
func messageSend(ctx context.Context, q Querier, p MessageSendParams) SendResult {
	m, err := scanMessage(q.QueryRow(ctx, `
		INSERT INTO messages (pod_id, author_id, idempotency_key, body, humor)
		SELECT $1, $2, $3, $4, $5
		WHERE EXISTS (SELECT 1 FROM memberships WHERE pod_id = $1 AND user_id = $2)
		RETURNING `+messageColumns,
		p.PodID, p.AuthorID, p.IdempotencyKey, p.Body, p.Humor))
	if err == nil {
		return SendResult{Message: m, Created: true}
	}
	switch uniqueViolation(err) {
	case "messages_idempotency":
	case "deleted_message_keys_pkey": // the insert trigger found the key of a deleted message
		return SendResult{Err: ErrMessageDeleted}
	default:
		return SendResult{Err: translate(err, "inserting message")}
	}
	m, err = scanMessage(q.QueryRow(ctx, `SELECT `+messageColumns+` FROM messages
		WHERE author_id = $1 AND idempotency_key = $2`, p.AuthorID, p.IdempotencyKey))
	if err != nil {
		return SendResult{Err: translate(err, "finding message by idempotency key")}
	}
	if m.PodID != p.PodID {
		return SendResult{Err: ErrIdempotencyMismatch}
	}
	if m.Body != p.Body || m.Humor != p.Humor {
		// Edited since, perhaps: a retry repeats what was stored first,
		// which the message's message_created event keeps.
		same, err := sentFirstAs(ctx, q, m, p)
		if err != nil {
			return SendResult{Err: err}
		}
		if !same {
			return SendResult{Err: ErrIdempotencyMismatch}
		}
	}
	return SendResult{Message: m}
}

// sentFirstAs reports whether m, as first stored, had p's body and humor.
func sentFirstAs(ctx context.Context, q Querier, m Message, p MessageSendParams) (bool, error) {
	var body string
	var humor bool
	err := q.QueryRow(ctx, `SELECT payload->>'body', (payload->>'humor')::boolean FROM events
		WHERE pod_id = $1 AND seq = $2 AND kind = 'message_created'`, m.PodID, m.Seq).Scan(&body, &humor)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, translate(err, "reading the message as first stored")
	}
	return body == p.Body && humor == p.Humor, nil
}

// CreatedEvent is the message_created event the insert trigger wrote for m.
func (m Message) CreatedEvent() Event {
	payload, _ := json.Marshal(m) // cannot fail: strings, numbers and times
	return Event{PodID: m.PodID, Seq: m.Seq, Kind: EventMessageCreated, MessageID: &m.ID,
		UserID: &m.AuthorID, Payload: payload, CreatedAt: m.CreatedAt}
}

// MessagesList returns up to limit messages of a pod with a seq below
// beforeSeq (0: from the newest), oldest first, with their reactions, and
// whether older ones exist.
func MessagesList(ctx context.Context, q Querier, podID string, beforeSeq int64, limit int) ([]Message, bool, error) {
	rows, err := q.Query(ctx, `SELECT `+messageColumns+` FROM messages
		WHERE pod_id = $1 AND ($2 = 0 OR seq < $2)
		ORDER BY seq DESC LIMIT $3`, podID, beforeSeq, limit+1)
	if err != nil {
		return nil, false, translate(err, "listing messages")
	}
	msgs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Message, error) { return scanMessage(r) })
	if err != nil {
		return nil, false, translate(err, "listing messages")
	}
	hasMore := len(msgs) > limit
	if hasMore {
		msgs = msgs[:limit]
	}
	// Oldest first.
	for i, j := 0, len(msgs)-1; i < j; i, j = i+1, j-1 {
		msgs[i], msgs[j] = msgs[j], msgs[i]
	}
	if err := loadCoachTriggers(ctx, q, msgs); err != nil {
		return nil, false, err
	}
	return msgs, hasMore, loadReactions(ctx, q, msgs)
}

// loadCoachTriggers fills in why the coach wrote its messages among msgs.
func loadCoachTriggers(ctx context.Context, q Querier, msgs []Message) error {
	at := make(map[string]int)
	for i, m := range msgs {
		if m.AuthorID == CoachUserID {
			at[m.ID] = i
		}
	}
	if len(at) == 0 {
		return nil
	}
	rows, err := q.Query(ctx, `SELECT message_id, trigger FROM coach_interventions WHERE message_id = ANY($1)`, slices.Collect(maps.Keys(at)))
	if err != nil {
		return translate(err, "reading coach triggers")
	}
	var id, trigger string
	_, err = pgx.ForEachRow(rows, []any{&id, &trigger}, func() error {
		msgs[at[id]].CoachTrigger = trigger
		return nil
	})
	return translate(err, "reading coach triggers")
}

// LoadReactions fills in the reactions of m.
func LoadReactions(ctx context.Context, q Querier, m *Message) error {
	msgs := []Message{*m}
	err := loadReactions(ctx, q, msgs)
	*m = msgs[0]
	return err
}

// loadReactions fills in the reactions of msgs with one query.
func loadReactions(ctx context.Context, q Querier, msgs []Message) error {
	if len(msgs) == 0 {
		return nil
	}
	ids := make([]string, len(msgs))
	byID := make(map[string]*Message, len(msgs))
	for i := range msgs {
		ids[i] = msgs[i].ID
		byID[msgs[i].ID] = &msgs[i]
	}
	rows, err := q.Query(ctx, `SELECT message_id, emoji, user_id FROM reactions
		WHERE message_id = ANY($1) ORDER BY created_at, user_id`, ids)
	if err != nil {
		return translate(err, "listing reactions")
	}
	defer rows.Close()
	for rows.Next() {
		var messageID, emoji, userID string
		if err := rows.Scan(&messageID, &emoji, &userID); err != nil {
			return translate(err, "scanning reaction")
		}
		m := byID[messageID]
		i := 0
		for i < len(m.Reactions) && m.Reactions[i].Emoji != emoji {
			i++
		}
		if i == len(m.Reactions) {
			m.Reactions = append(m.Reactions, ReactionSummary{Emoji: emoji})
		}
		m.Reactions[i].UserIDs = append(m.Reactions[i].UserIDs, userID)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("listing reactions: %w", err)
	}
	return nil
}
