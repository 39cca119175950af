package rpc_test

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"

	podsv1 "github.com/pods-dev/pods/rpc/gen/pods/v1"
)

// sub is an open Subscribe stream read by a goroutine of its own.
type sub struct {
	t      *testing.T
	cancel context.CancelFunc
	events chan *podsv1.Event
	err    chan error    // the stream's end: nil or the error
	done   chan struct{} // closed when the reader has finished
}

func (e *env) subscribe(c *client, cursors map[string]int64) *sub {
	e.t.Helper()
	s, err := e.openSub(c, cursors)
	if err != nil {
		e.t.Fatalf("subscribe: %v", err)
	}
	return s
}

// openSub is subscribe for any goroutine: it returns the error instead of
// failing the test.
func (e *env) openSub(c *client, cursors map[string]int64) (*sub, error) {
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := c.Live.Subscribe(ctx, connect.NewRequest(&podsv1.SubscribeRequest{Cursors: cursors}))
	if err != nil {
		cancel()
		return nil, err
	}
	s := &sub{t: e.t, cancel: cancel, events: make(chan *podsv1.Event, 100000), err: make(chan error, 1), done: make(chan struct{})}
	go func() {
		for stream.Receive() {
			s.events <- stream.Msg().Event
		}
		s.err <- stream.Err()
		stream.Close()
		close(s.done)
	}()
	e.t.Cleanup(s.close)
	return s, nil
}

// close ends the stream and waits for its reader.
func (s *sub) close() {
	s.cancel()
	<-s.done
}

// next returns the next event that is not a heartbeat.
func (s *sub) next() *podsv1.Event {
	s.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-s.events:
			if ev.GetHeartbeat() == nil {
				return ev
			}
		case err := <-s.err:
			s.err <- err
			s.t.Fatalf("stream ended: %v", err)
		case <-timeout:
			s.t.Fatal("no event within 10s")
		}
	}
}

// nextLogged returns the next event of a pod's log (seq > 0).
func (s *sub) nextLogged() *podsv1.Event {
	s.t.Helper()
	for {
		if ev := s.next(); ev.Seq > 0 {
			return ev
		}
	}
}

// nextNotPresence returns the next event that is not a presence event.
func (s *sub) nextNotPresence() *podsv1.Event {
	s.t.Helper()
	for {
		if ev := s.next(); ev.GetPresence() == nil {
			return ev
		}
	}
}

// ready returns the stream's first event, which must be ready.
func (s *sub) ready() *podsv1.Ready {
	s.t.Helper()
	ev := s.next()
	if ev.GetReady() == nil {
		s.t.Fatalf("first event is %v, want ready", ev)
	}
	return ev.GetReady()
}

// quiet fails if an event other than a heartbeat arrives within d.
func (s *sub) quiet(d time.Duration) {
	s.t.Helper()
	timeout := time.After(d)
	for {
		select {
		case ev := <-s.events:
			if ev.GetHeartbeat() == nil {
				s.t.Fatalf("unexpected event %v", ev)
			}
		case <-timeout:
			return
		}
	}
}

// subscribeErr opens a stream that must fail, and returns its error.
func (e *env) subscribeErr(c *client, cursors map[string]int64) error {
	e.t.Helper()
	stream, err := c.Live.Subscribe(context.Background(), connect.NewRequest(&podsv1.SubscribeRequest{Cursors: cursors}))
	if err != nil {
		return err
	}
	defer stream.Close()
	for stream.Receive() {
		e.t.Fatalf("a stream that should fail sent %v", stream.Msg().Event)
	}
	return stream.Err()
}
