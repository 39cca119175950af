package db

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// SendResult is what MessageSend gave, or would have given, one call.
type SendResult struct {
	Message Message
	// Created is true if this call stored the message (not a retry).
	Created bool
	Err     error
}

// MessagesSend stores messages from several calls in one transaction: one
// statement, one commit and one WAL flush for all of them. Each result is
// the one MessageSend would have given that call.
//
// New messages take the fast path; a call whose message is not inserted
// there (a retry, a non-member, a key used twice in the batch or by a
// deleted message) or a batch
// that fails as a whole (a concurrent writer took a key first, a deadlock)
// falls back to MessageSend, one call at a time. Rows are inserted in pod
// order, so that two batches lock their pods in the same order.
//
// report, if not nil, learns each outcome as soon as it is known, in seq
// order per pod: the messages the shared statement stored, then each
// fallback call's message (stored, or found: a retry's) or, if the call
// failed (perhaps after its commit), its pod. A message may be reported
// twice.
func MessagesSend(ctx context.Context, pool *Pool, ps []MessageSendParams, report func(stored []Message, failedPods []string)) []SendResult {
	if report == nil {
		report = func([]Message, []string) {}
	}
	if len(ps) == 1 { // MessageSend's statement is the quicker one
		return []SendResult{messageSendReporting(ctx, pool, ps[0], report)}
	}
	results := make([]SendResult, len(ps))
	type key struct{ author, idempotency string }
	first := make(map[key]int, len(ps))
	var fast []int // indexes into ps, one per key
	for i, p := range ps {
		k := key{p.AuthorID, p.IdempotencyKey}
		if _, seen := first[k]; !seen {
			first[k] = i
			fast = append(fast, i)
		}
	}
	slices.SortStableFunc(fast, func(a, b int) int { return cmp.Compare(ps[a].PodID, ps[b].PodID) })

	batch := make([]MessageSendParams, len(fast))
	for j, i := range fast {
		batch[j] = ps[i]
	}
	inserted, err := insertMessages(ctx, pool, batch)
	if err == nil {
		for _, m := range inserted {
			// A key spelled differently by the database (a UUID in upper
			// case) is found by the fallback instead.
			if i, ok := first[key{m.AuthorID, m.IdempotencyKey}]; ok {
				results[i] = SendResult{Message: m, Created: true}
			}
		}
	}
	if len(inserted) > 0 {
		report(sortedBySeq(inserted), nil)
	}
	for i, p := range ps {
		if results[i].Created {
			continue
		}
		results[i] = messageSendReporting(ctx, pool, p, report)
	}
	return results
}

// insertMessages inserts ps's messages in one statement, in their order,
// but for those whose author is not a member of their pod or whose key is
// taken (by a message or a deleted one), and returns the inserted ones.
func insertMessages(ctx context.Context, q Querier, ps []MessageSendParams) ([]Message, error) {
	pods, authors, keys, bodies, humors := make([]string, len(ps)), make([]string, len(ps)),
		make([]string, len(ps)), make([]string, len(ps)), make([]bool, len(ps))
	for i, p := range ps {
		pods[i], authors[i], keys[i], bodies[i], humors[i] = p.PodID, p.AuthorID, p.IdempotencyKey, p.Body, p.Humor
	}
	// One statement is one transaction: no BEGIN and COMMIT round trips.
	rows, err := q.Query(ctx, `
		INSERT INTO messages (pod_id, author_id, idempotency_key, body, humor)
		SELECT t.pod_id, t.author_id, t.idempotency_key, t.body, t.humor
		FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::bool[])
			WITH ORDINALITY AS t(pod_id, author_id, idempotency_key, body, humor, n)
		WHERE EXISTS (SELECT 1 FROM memberships m WHERE m.pod_id = t.pod_id AND m.user_id = t.author_id)
		  AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.author_id = t.author_id AND m.idempotency_key = t.idempotency_key)
		  AND NOT EXISTS (SELECT 1 FROM deleted_message_keys d WHERE d.author_id = t.author_id AND d.idempotency_key = t.idempotency_key)
		ORDER BY t.n
		RETURNING `+messageColumns, pods, authors, keys, bodies, humors)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Message, error) { return scanMessage(r) })
}

// messageSendReporting is messageSend, reporting its outcome as
// MessagesSend does.
func messageSendReporting(ctx context.Context, pool *Pool, p MessageSendParams, report func([]Message, []string)) SendResult {
	r := messageSend(ctx, pool, p)
	if r.Err != nil {
		report(nil, []string{p.PodID})
	} else {
		report([]Message{r.Message}, nil)
	}
	return r
}

// MessageBatcher groups concurrent MessageSend calls into shared
// transactions (group commit). A call finding a writer free is written at
// once, alone; calls arriving while every writer is busy wait for the next
// free one, which takes them all (up to a limit) in one transaction. So a
// quiet server adds no delay, and a busy one commits many messages per WAL
// flush instead of one.
type MessageBatcher struct {
	pool     *Pool
	writers  int
	maxBatch int
	// written, if set, learns each outcome of a batch as MessagesSend's
	// report does, before the batch's callers are answered.
	written func(stored []Message, failedPods []string)

	mu      sync.Mutex
	queue   []*sendCall
	running int // writers at work
}

type sendCall struct {
	ctx    context.Context // the caller's: a call it gave up on is not written
	params MessageSendParams
	done   chan SendResult // cap 1
}

// batchTimeout bounds one batch's transaction; it does not depend on any
// caller's context, as a batch writes for several callers.
const batchTimeout = 30 * time.Second

// NewMessageBatcher returns a batcher that runs at most writers (at least
// one) transactions at a time of at most maxBatch (at least one) messages
// each. written may be nil.
func NewMessageBatcher(pool *Pool, writers, maxBatch int, written func(stored []Message, failedPods []string)) *MessageBatcher {
	return &MessageBatcher{pool: pool, writers: max(writers, 1), maxBatch: max(maxBatch, 1), written: written}
}

// Send stores a message as MessageSend does, sharing the transaction with
// concurrent calls. If ctx ends first the message may still be stored; a
// retry with the same key finds it.
func (b *MessageBatcher) Send(ctx context.Context, p MessageSendParams) SendResult {
	c := &sendCall{ctx: ctx, params: p, done: make(chan SendResult, 1)}
	b.mu.Lock()
	b.queue = append(b.queue, c)
	if b.running < b.writers {
		b.running++
		go b.write()
	}
	b.mu.Unlock()
	select {
	case r := <-c.done:
		return r
	case <-ctx.Done():
		return SendResult{Err: ctx.Err()}
	}
}

// write writes queued calls in batches until the queue is empty.
func (b *MessageBatcher) write() {
	for {
		b.mu.Lock()
		n := min(len(b.queue), b.maxBatch)
		if n == 0 {
			b.running--
			b.mu.Unlock()
			return
		}
		batch := slices.DeleteFunc(slices.Clone(b.queue[:n]), func(c *sendCall) bool { return c.ctx.Err() != nil })
		b.queue = slices.Delete(b.queue, 0, n)
		b.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		params := make([]MessageSendParams, len(batch))
		for i, c := range batch {
			params[i] = c.params
		}
		ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
		results := MessagesSend(ctx, b.pool, params, b.written)
		cancel()
		for i, c := range batch {
			c.done <- results[i]
		}
	}
}

// sortedBySeq sorts msgs by pod and seq, and returns them.
func sortedBySeq(msgs []Message) []Message {
	slices.SortFunc(msgs, func(x, y Message) int {
		return cmp.Or(cmp.Compare(x.PodID, y.PodID), cmp.Compare(x.Seq, y.Seq))
	})
	return msgs
}
