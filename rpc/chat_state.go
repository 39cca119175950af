package rpc

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	"github.com/pods-dev/pods/db"
	podsv1 "github.com/pods-dev/pods/rpc/gen/pods/v1"
)

// MarkRead moves the caller's read cursor forward and returns the unread
// count; the caller's other streams get readUpdated.
func (s chatService) MarkRead(ctx context.Context, req *connect.Request[podsv1.MarkReadRequest]) (*connect.Response[podsv1.MarkReadResponse], error) {
	podID, err := checkID("pod_id", req.Msg.PodId)
	if err != nil {
		return nil, err
	}
	if req.Msg.Seq < 0 {
		return nil, invalid("seq", "must not be negative")
	}
	_, unread, err := db.MarkRead(ctx, s.pool, podID, UserID(ctx), req.Msg.Seq)
	if errors.Is(err, db.ErrNotFound) {
		return nil, errPodNotFound
	}
	if err != nil {
		return nil, toConnect(ctx, s.logger, err)
	}
	return connect.NewResponse(&podsv1.MarkReadResponse{UnreadCount: unread}), nil
}

// SetTyping tells the pod's other members that the caller started or
// stopped typing. Nothing is stored.
func (s chatService) SetTyping(ctx context.Context, req *connect.Request[podsv1.SetTypingRequest]) (*connect.Response[podsv1.SetTypingResponse], error) {
	podID, err := checkID("pod_id", req.Msg.PodId)
	if err != nil {
		return nil, err
	}
	if err := s.typing.allow(UserID(ctx) + "/" + podID); err != nil {
		return nil, err
	}
	member, err := db.NotifyTyping(ctx, s.pool, podID, UserID(ctx), req.Msg.Typing)
	if err != nil {
		return nil, toConnect(ctx, s.logger, err)
	}
	if !member {
		return nil, errPodNotFound
	}
	return connect.NewResponse(&podsv1.SetTypingResponse{}), nil
}
