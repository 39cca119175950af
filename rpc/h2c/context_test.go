package h2c

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestStreamContext proves a stream's context ends what derives from it,
// as context.WithCancel's would, and keeps nothing of a derived context
// that ended first.
func TestStreamContext(t *testing.T) {
	type key struct{}
	ctx := newStreamContext(context.WithValue(context.Background(), key{}, "conn"))
	if ctx.Value(key{}) != "conn" || ctx.Err() != nil {
		t.Fatalf("a new stream context: value %v, err %v", ctx.Value(key{}), ctx.Err())
	}

	// Derived contexts that end first leave nothing behind.
	for range 3 {
		child, cancel := context.WithCancel(ctx)
		stop := context.AfterFunc(ctx, func() { t.Error("a stopped AfterFunc ran") })
		cancel()
		if !stop() {
			t.Error("stop did not stop the AfterFunc")
		}
		if child.Err() == nil {
			t.Error("the canceled child is not done")
		}
	}
	if n := len(ctx.after); n != 0 {
		t.Errorf("the stream context keeps %d waits of ended children", n)
	}

	child, cancelChild := context.WithCancel(ctx)
	defer cancelChild()
	ran := make(chan struct{})
	context.AfterFunc(ctx, func() { close(ran) })
	ctx.cancel()
	ctx.cancel() // a second cancel is a no-op
	select {
	case <-ctx.Done():
	default:
		t.Fatal("Done is not closed after cancel")
	}
	for _, c := range []context.Context{ctx, child} {
		select {
		case <-c.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("a context derived before the cancel is not done")
		}
		if !errors.Is(c.Err(), context.Canceled) || !errors.Is(context.Cause(c), context.Canceled) {
			t.Errorf("Err %v, Cause %v; want context.Canceled", c.Err(), context.Cause(c))
		}
	}
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("the AfterFunc did not run")
	}

	late, cancelLate := context.WithCancel(ctx)
	defer cancelLate()
	if late.Err() == nil {
		t.Error("a context derived after the cancel is not done")
	}
}
