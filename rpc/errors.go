package rpc

import (
	"context"
	"errors"
	"log/slog"

	"connectrpc.com/connect"

	"github.com/pods-dev/pods/db"
)

// invalid returns an invalid_argument error for a request field.
func invalid(field, problem string) error {
	return connect.NewError(connect.CodeInvalidArgument, errors.New(field+": "+problem))
}

// toConnect turns an error from the db package into a Connect error with a
// code a client can act on. Errors nobody expected are logged in full and
// reach the client as a bare internal error, so no SQL leaks out.
func toConnect(ctx context.Context, logger *slog.Logger, err error) error {
	var connectErr *connect.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &connectErr):
		return err
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err)
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, err)
	case errors.Is(err, db.ErrPodFull):
		return connect.NewError(connect.CodeFailedPrecondition, db.ErrPodFull)
	case errors.Is(err, db.ErrNotOwner):
		return connect.NewError(connect.CodePermissionDenied, db.ErrNotOwner)
	case errors.Is(err, db.ErrNotAuthor):
		return connect.NewError(connect.CodePermissionDenied, db.ErrNotAuthor)
	case errors.Is(err, db.ErrIdempotencyMismatch):
		return connect.NewError(connect.CodeAlreadyExists, db.ErrIdempotencyMismatch)
	case errors.Is(err, db.ErrMessageDeleted):
		return connect.NewError(connect.CodeNotFound, db.ErrMessageDeleted)
	}
	logger.ErrorContext(ctx, "request failed", "err", err)
	return connect.NewError(connect.CodeInternal, errors.New("internal error"))
}
