package rpc

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	"github.com/pods-dev/pods/db"
	"github.com/pods-dev/pods/rpc/convert"
	podsv1 "github.com/pods-dev/pods/rpc/gen/pods/v1"
)

// chatService implements ChatService: messages here, edits, deletes and
// reactions in chat_edit.go, read cursors and typing in chat_state.go.
type chatService struct {
	*Server
}

// SendMessage stores a message exactly once per idempotency key.
func (s chatService) SendMessage(ctx context.Context, req *connect.Request[podsv1.SendMessageRequest]) (*connect.Response[podsv1.SendMessageResponse], error) {
	m := req.Msg
	podID, err := checkID("pod_id", m.PodId)
	if err != nil {
		return nil, err
	}
	if err := checkIdempotencyKey(m.IdempotencyKey, true); err != nil {
		return nil, err
	}
	if err := checkText("body", m.Body, maxBodyLen); err != nil {
		return nil, err
	}
	if err := s.writes.allow(UserID(ctx)); err != nil {
		return nil, err
	}
	sent := s.sends.Send(ctx, db.MessageSendParams{
		PodID: podID, AuthorID: UserID(ctx), IdempotencyKey: m.IdempotencyKey, Body: m.Body, Humor: m.Humor,
	})
	if errors.Is(sent.Err, db.ErrNotFound) {
		return nil, errPodNotFound
	}
	if sent.Err != nil {
		return nil, toConnect(ctx, s.logger, sent.Err)
	}
	if !sent.Created { // a retry: the message as it is now, reactions too
		if err := db.LoadReactions(ctx, s.pool, &sent.Message); err != nil {
			return nil, toConnect(ctx, s.logger, err)
		}
	}
	return connect.NewResponse(&podsv1.SendMessageResponse{Message: convert.Message(sent.Message)}), nil
}

// ListMessages pages back through a pod's history, oldest first.
func (s chatService) ListMessages(ctx context.Context, req *connect.Request[podsv1.ListMessagesRequest]) (*connect.Response[podsv1.ListMessagesResponse], error) {
	m := req.Msg
	podID, err := checkID("pod_id", m.PodId)
	if err != nil {
		return nil, err
	}
	if m.BeforeSeq < 0 {
		return nil, invalid("before_seq", "must not be negative")
	}
	limit := int(m.Limit)
	switch {
	case limit == 0:
		limit = defaultListLimit
	case limit < 0 || limit > maxListLimit:
		return nil, invalid("limit", "must be between 1 and 200")
	}
	if ok, err := db.IsMember(ctx, s.pool, podID, UserID(ctx)); err != nil || !ok {
		if err != nil {
			return nil, toConnect(ctx, s.logger, err)
		}
		return nil, errPodNotFound
	}
	msgs, hasMore, err := db.MessagesList(ctx, s.pool, podID, m.BeforeSeq, limit)
	if err != nil {
		return nil, toConnect(ctx, s.logger, err)
	}
	out := make([]*podsv1.Message, len(msgs))
	for i, msg := range msgs {
		out[i] = convert.Message(msg)
	}
	return connect.NewResponse(&podsv1.ListMessagesResponse{Messages: out, HasMore: hasMore}), nil
}
