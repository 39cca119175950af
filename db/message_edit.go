package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ErrNotAuthor means only the message's author may do this.
var ErrNotAuthor = errors.New("only the message's author may do this")

// MessageEditParams are the caller and the new content of a message.
type MessageEditParams struct {
	MessageID string
	UserID    string
	Body      string
	// Humor is the new humor flag; nil keeps the old one.
	Humor *bool
}

// MessageEdit changes the body and humor flag of the caller's own message,
// sets edited_at, and returns the message with its reactions. An edit that
// changes nothing writes nothing, so it emits no event and keeps edited_at.
// A message the caller cannot see (unknown, or in a pod they are not a
// member of) is ErrNotFound; someone else's message is ErrNotAuthor.
func MessageEdit(ctx context.Context, pool *Pool, p MessageEditParams) (Message, error) {
	var m Message
	err := InTx(ctx, pool, func(tx Tx) error {
		// The row lock is the one the UPDATE takes anyway (a key stays a
		// key), so concurrent edits of one message serialize here while
		// reactions, which only need the key, go on.
		var err error
		m, err = scanMessage(tx.QueryRow(ctx, `SELECT `+messageColumns+` FROM messages
			WHERE id = $1
			  AND EXISTS (SELECT 1 FROM memberships s WHERE s.pod_id = messages.pod_id AND s.user_id = $2)
			FOR NO KEY UPDATE`, p.MessageID, p.UserID))
		if err != nil {
			return translate(err, "finding message")
		}
		if m.AuthorID != p.UserID {
			return ErrNotAuthor
		}
		humor := m.Humor
		if p.Humor != nil {
			humor = *p.Humor
		}
		if m.Body != p.Body || m.Humor != humor {
			m, err = scanMessage(tx.QueryRow(ctx, `UPDATE messages SET body = $2, humor = $3, edited_at = now()
				WHERE id = $1 RETURNING `+messageColumns, p.MessageID, p.Body, humor))
			if err != nil {
				return translate(err, "updating message")
			}
		}
		msgs := []Message{m}
		if err := loadReactions(ctx, tx, msgs); err != nil {
			return err
		}
		m = msgs[0]
		return nil
	})
	return m, err
}

// MessageDelete deletes a message for good; a trigger scrubs its text from
// the event log. Its author or the pod's owner may, as long as they are a
// member of the pod; any other member gets ErrNotOwner. A message the caller
// cannot see is ErrNotFound, except that deleting a message again succeeds
// for its author and for the pod's owner (the log remembers whose it was).
func MessageDelete(ctx context.Context, pool *Pool, messageID, userID string) error {
	return InTx(ctx, pool, func(tx Tx) error {
		var authorID, ownerID string
		// The pod row too, before the delete: a retry of the message's
		// SendMessage that took it between the delete and its event would
		// wait for the delete, which would wait for the row. The message
		// first, then the pod, as edits and reactions lock them.
		err := tx.QueryRow(ctx, `
			SELECT m.author_id, p.owner_id FROM messages m JOIN pods p ON p.id = m.pod_id
			WHERE m.id = $1
			  AND EXISTS (SELECT 1 FROM memberships s WHERE s.pod_id = m.pod_id AND s.user_id = $2)
			FOR UPDATE OF m FOR NO KEY UPDATE OF p`, messageID, userID).Scan(&authorID, &ownerID)
		if errors.Is(err, pgx.ErrNoRows) {
			return messageDeletedBefore(ctx, tx, messageID, userID)
		}
		switch {
		case err != nil:
			return translate(err, "finding message")
		case userID != authorID && userID != ownerID:
			return ErrNotOwner
		}
		_, err = tx.Exec(ctx, `
			WITH gone AS (DELETE FROM messages WHERE id = $1 RETURNING author_id, idempotency_key, pod_id)
			INSERT INTO deleted_message_keys (author_id, idempotency_key, pod_id)
			SELECT author_id, idempotency_key, pod_id FROM gone
			ON CONFLICT DO NOTHING`, messageID)
		return translate(err, "deleting message")
	})
}

// messageDeletedBefore returns nil if messageID was deleted from a pod
// userID is a member of and userID is its author or the pod's owner, and
// ErrNotFound otherwise. Every event of a deleted message is a
// message_deleted event naming its author.
func messageDeletedBefore(ctx context.Context, q Querier, messageID, userID string) error {
	var deleted bool
	err := q.QueryRow(ctx, `
		SELECT EXISTS (
			SELECT 1 FROM events e JOIN pods p ON p.id = e.pod_id
			WHERE e.message_id = $1 AND e.kind = $3 AND $2 IN (e.user_id, p.owner_id)
			  AND EXISTS (SELECT 1 FROM memberships s WHERE s.pod_id = e.pod_id AND s.user_id = $2))`,
		messageID, userID, EventMessageDeleted).Scan(&deleted)
	if err == nil && !deleted {
		return fmt.Errorf("deleting message: %w", ErrNotFound)
	}
	return translate(err, "finding deleted message")
}

// reactionTarget selects, as target, the message $1 if user $2 is a member
// of its pod. It locks the row's key so that a concurrent delete of the
// message waits for the reaction's statement instead of failing its
// foreign key.
const reactionTarget = `WITH target AS (
	SELECT m.id FROM messages m
	WHERE m.id = $1
	  AND EXISTS (SELECT 1 FROM memberships s WHERE s.pod_id = m.pod_id AND s.user_id = $2)
	FOR KEY SHARE OF m)`

// ReactionAdd adds userID's reaction with emoji to a message in one of
// their pods. Adding it again changes nothing and emits no event (the
// reactions trigger fires only for rows inserted). A message the user
// cannot see is ErrNotFound.
func ReactionAdd(ctx context.Context, q Querier, messageID, userID, emoji string) error {
	return reactionChange(ctx, q, messageID, userID, emoji, "adding reaction", reactionTarget+`,
		change AS (
			INSERT INTO reactions (message_id, user_id, emoji) SELECT id, $2, $3 FROM target
			ON CONFLICT DO NOTHING)
		SELECT EXISTS (SELECT 1 FROM target)`)
}

// ReactionRemove removes userID's reaction with emoji from a message in one
// of their pods. Removing a missing one changes nothing and emits no event.
// A message the user cannot see is ErrNotFound.
func ReactionRemove(ctx context.Context, q Querier, messageID, userID, emoji string) error {
	return reactionChange(ctx, q, messageID, userID, emoji, "removing reaction", reactionTarget+`,
		change AS (
			DELETE FROM reactions r USING target t
			WHERE r.message_id = t.id AND r.user_id = $2 AND r.emoji = $3)
		SELECT EXISTS (SELECT 1 FROM target)`)
}

// reactionChange runs a statement that changes a reaction and reports
// whether the message was found.
func reactionChange(ctx context.Context, q Querier, messageID, userID, emoji, doing, sql string) error {
	var found bool
	err := q.QueryRow(ctx, sql, messageID, userID, emoji).Scan(&found)
	if err == nil && !found {
		return fmt.Errorf("%s: %w", doing, ErrNotFound)
	}
	return translate(err, doing)
}
