package h2c

import (
	"context"
	"sync"
)

// streamContext is a stream's context, done when the stream ends. It does
// what context.WithCancel does, but holds what waits for its end in a
// slice, which empties as the waits stop: a cancelCtx keeps the map its
// first child made, and every database query makes one, so a stream open
// for hours would hold it all its life.
type streamContext struct {
	context.Context // the connection's: values, and no deadline

	mu    sync.Mutex
	done  chan struct{}
	err   error
	after []*func() // called once done
}

func newStreamContext(parent context.Context) *streamContext {
	return &streamContext{Context: parent, done: make(chan struct{})}
}

func (c *streamContext) Done() <-chan struct{} { return c.done }

func (c *streamContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// cancel ends the context, once.
func (c *streamContext) cancel() {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = context.Canceled
	close(c.done)
	after := c.after
	c.after = nil
	c.mu.Unlock()
	for _, f := range after {
		(*f)() // as a cancelCtx cancels its children: before cancel returns
	}
}

// AfterFunc has cancel call f; stop keeps it from being called. The
// context package uses it for the contexts derived from this one, holding
// the derived one's lock, which f takes: once the context is done, f runs
// in a goroutine of its own.
func (c *streamContext) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		go f()
		return func() bool { return false }
	}
	entry := &f
	c.after = append(c.after, entry)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		n := len(c.after)
		for i, e := range c.after {
			if e == entry {
				c.after[i] = c.after[n-1]
				c.after[n-1] = nil
				c.after = c.after[:n-1]
				return true
			}
		}
		return false
	}
}
