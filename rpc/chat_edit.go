package rpc

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	"github.com/pods-dev/pods/db"
	"github.com/pods-dev/pods/rpc/convert"
	podsv1 "github.com/pods-dev/pods/rpc/gen/pods/v1"
)

// errMessageNotFound answers for a message that does not exist or that the
// caller cannot see, without telling which.
var errMessageNotFound = connect.NewError(connect.CodeNotFound, errors.New("message not found, or you are not a member of its pod"))

// EditMessage changes the body and humor flag of the caller's own message.
func (s chatService) EditMessage(ctx context.Context, req *connect.Request[podsv1.EditMessageRequest]) (*connect.Response[podsv1.EditMessageResponse], error) {
	m := req.Msg
	id, err := checkID("message_id", m.MessageId)
	if err != nil {
		return nil, err
	}
	if err := checkText("body", m.Body, maxBodyLen); err != nil {
		return nil, err
	}
	if err := s.writes.allow(UserID(ctx)); err != nil {
		return nil, err
	}
	msg, err := db.MessageEdit(ctx, s.pool, db.MessageEditParams{
		MessageID: id, UserID: UserID(ctx), Body: m.Body, Humor: m.Humor,
	})
	if err != nil {
		return nil, s.messageError(ctx, err)
	}
	return connect.NewResponse(&podsv1.EditMessageResponse{Message: convert.Message(msg)}), nil
}

// DeleteMessage deletes a message for good, if the caller wrote it or owns
// its pod.
func (s chatService) DeleteMessage(ctx context.Context, req *connect.Request[podsv1.DeleteMessageRequest]) (*connect.Response[podsv1.DeleteMessageResponse], error) {
	id, err := checkID("message_id", req.Msg.MessageId)
	if err != nil {
		return nil, err
	}
	if err := s.writes.allow(UserID(ctx)); err != nil {
		return nil, err
	}
	if err := db.MessageDelete(ctx, s.pool, id, UserID(ctx)); err != nil {
		return nil, s.messageError(ctx, err)
	}
	return connect.NewResponse(&podsv1.DeleteMessageResponse{}), nil
}

// AddReaction adds the caller's reaction to a message, once.
func (s chatService) AddReaction(ctx context.Context, req *connect.Request[podsv1.AddReactionRequest]) (*connect.Response[podsv1.AddReactionResponse], error) {
	if err := s.changeReaction(ctx, db.ReactionAdd, req.Msg.MessageId, req.Msg.Emoji); err != nil {
		return nil, err
	}
	return connect.NewResponse(&podsv1.AddReactionResponse{}), nil
}

// RemoveReaction removes the caller's reaction from a message, if present.
func (s chatService) RemoveReaction(ctx context.Context, req *connect.Request[podsv1.RemoveReactionRequest]) (*connect.Response[podsv1.RemoveReactionResponse], error) {
	if err := s.changeReaction(ctx, db.ReactionRemove, req.Msg.MessageId, req.Msg.Emoji); err != nil {
		return nil, err
	}
	return connect.NewResponse(&podsv1.RemoveReactionResponse{}), nil
}

// changeReaction validates a reaction request and applies change, one of
// db.ReactionAdd and db.ReactionRemove, for the caller.
func (s chatService) changeReaction(ctx context.Context, change func(context.Context, db.Querier, string, string, string) error, messageID, emoji string) error {
	id, err := checkID("message_id", messageID)
	if err != nil {
		return err
	}
	if err := checkEmoji(emoji); err != nil {
		return err
	}
	if err := s.writes.allow(UserID(ctx)); err != nil {
		return err
	}
	if err := change(ctx, s.pool, id, UserID(ctx), emoji); err != nil {
		return s.messageError(ctx, err)
	}
	return nil
}

// messageError maps the error of a write on a message to a Connect error.
func (s chatService) messageError(ctx context.Context, err error) error {
	if errors.Is(err, db.ErrNotFound) {
		return errMessageNotFound
	}
	return toConnect(ctx, s.logger, err)
}
