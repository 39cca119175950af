package rpc

import (
	"context"
	"net/http"
	"time"

	"connectrpc.com/connect"

	podsv1 "github.com/pods-dev/pods/rpc/gen/pods/v1"
	"github.com/pods-dev/pods/rpc/gen/pods/v1/podsv1connect"
	"github.com/pods-dev/pods/stream"
)

// realtimeService implements RealtimeService on a stream.Hub.
type realtimeService struct {
	*Server
}

// Subscribe streams every change of the caller's pods.
func (s realtimeService) Subscribe(ctx context.Context, req *connect.Request[podsv1.SubscribeRequest], out *connect.ServerStream[podsv1.SubscribeResponse]) error {
	cursors, err := checkCursors(req.Msg.Cursors)
	if err != nil {
		return err
	}
	return s.hub.Serve(ctx, stream.Request{
		UserID:  UserID(ctx),
		Session: sessionHash(ctx),
		Cursors: cursors,
		Send: func(ev *podsv1.Event) error {
			return out.Send(&podsv1.SubscribeResponse{Event: ev})
		},
		CutOff: cutOff(ctx),
	})
}

// checkCursors returns the cursors with their pod IDs in canonical form.
func checkCursors(in map[string]int64) (map[string]int64, error) {
	cursors := make(map[string]int64, len(in))
	for podID, seq := range in {
		id, err := checkID("cursors", podID)
		if err != nil {
			return nil, err
		}
		if seq < 0 {
			return nil, invalid("cursors", "a seq must not be negative")
		}
		cursors[id] = seq
	}
	return cursors, nil
}

type responseControllerKey struct{}

// withResponseController makes the ResponseController of stream requests
// available to their handler, so that a stream stuck on a client that
// stopped reading can be cut off.
func withResponseController(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == podsv1connect.RealtimeServiceSubscribeProcedure {
			r = r.WithContext(context.WithValue(r.Context(), responseControllerKey{}, http.NewResponseController(w)))
		}
		next.ServeHTTP(w, r)
	})
}

// cutOffGrace is how long a stream that is cut off has to end with
// resource_exhausted before its writes fail (and the stream is reset)
// because the client stopped reading.
const cutOffGrace = time.Second

// cutOff returns a function that makes the request's writes fail soon, so
// that a write blocked on a client that stopped reading returns.
func cutOff(ctx context.Context) func() {
	rc, _ := ctx.Value(responseControllerKey{}).(*http.ResponseController)
	if rc == nil {
		return nil
	}
	return func() { rc.SetWriteDeadline(time.Now().Add(cutOffGrace)) }
}
