package stream

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pods-dev/pods/db"
	podsv1 "github.com/pods-dev/pods/rpc/gen/pods/v1"
)

// A subscriber that ends leaves no trace in the hub, whichever way its
// pods were attached and detached.
func TestUnregisterDetachesEveryPod(t *testing.T) {
	h := NewHub(Config{})
	for _, id := range []string{"a", "b", "c"} {
		h.pods[id] = &podState{known: true, subs: make(map[*subscriber]bool)} // no database read
	}
	s, other := newSubscriber("u1", 1, func(error) {}), newSubscriber("u2", 1, func(error) {})
	h.register(s)
	h.register(other)
	for _, sub := range []*subscriber{s, other} {
		if err := h.attach(context.Background(), sub, []string{"a", "b", "c", "a"}); err != nil {
			t.Fatal(err)
		}
	}
	h.detach(s, "b")
	h.unregister(s)
	for id, ps := range h.pods {
		if ps.subs[s] {
			t.Errorf("pod %s still sends to the ended subscriber", id)
		}
		if !ps.subs[other] {
			t.Errorf("pod %s lost the other subscriber", id)
		}
	}
	h.unregister(other)
	if len(h.pods) != 0 || len(h.users) != 0 {
		t.Errorf("left behind: %d pods, %d users", len(h.pods), len(h.users))
	}
}

// Events the node committed itself go out at once when they continue what
// a pod has delivered; one that would skip a seq, and everything after it,
// is read from the log: its pod is marked dirty.
func TestCommittedDeliversOnlyWhatContinuesAPod(t *testing.T) {
	h := NewHub(Config{})
	h.pods["a"] = &podState{lastSeq: 5, known: true, subs: make(map[*subscriber]bool)}
	s := newSubscriber("u1", 8, func(error) {})
	h.register(s)
	if err := h.attach(context.Background(), s, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	h.committed([]db.Event{{PodID: "a", Seq: 6}, {PodID: "a", Seq: 7}})
	h.committed([]db.Event{{PodID: "a", Seq: 9}, {PodID: "a", Seq: 10}}) // 8 not delivered yet
	h.committed([]db.Event{{PodID: "a", Seq: 7}})                        // already delivered
	var seqs []int64
	for _, d := range s.take(nil) {
		for _, e := range d.events {
			seqs = append(seqs, e.Seq)
		}
	}
	if want := []int64{6, 7}; !slices.Equal(seqs, want) {
		t.Errorf("delivered seqs %v, want %v", seqs, want)
	}
	if h.pods["a"].lastSeq != 7 {
		t.Errorf("pod's last delivered seq %d, want 7", h.pods["a"].lastSeq)
	}
	if _, dirty := h.dirty["a"]; !dirty {
		t.Error("the pod with events left undelivered is not dirty: nothing would read them")
	}
}

// A failed write may have been committed all the same: its pod is read
// from the log.
func TestMessagesWrittenReadsAFailedWritesPod(t *testing.T) {
	h := NewHub(Config{})
	h.pods["a"] = &podState{lastSeq: 5, known: true, subs: make(map[*subscriber]bool)}
	h.MessagesWritten(nil, []string{"a"})
	if _, dirty := h.dirty["a"]; !dirty {
		t.Error("the failed write's pod is not dirty")
	}
}

// A connection that fails right after it opened backs off as if it never
// opened; one that lasted starts over at the shortest wait.
func TestReconnectBackoff(t *testing.T) {
	var b reconnectBackoff
	within := func(got, base time.Duration) {
		t.Helper()
		if got < base/2 || got >= base/2+base {
			t.Fatalf("waited %v, want %v with jitter", got, base)
		}
	}
	for _, want := range []time.Duration{50, 100, 200, 400, 800, 1600, 3200, 5000, 5000} {
		within(b.next(time.Second), want*time.Millisecond)
	}
	within(b.next(healthyConnection), 50*time.Millisecond)
	within(b.next(0), 100*time.Millisecond)
}

// goneOnSecondLook is a context whose client goes away between the first
// and second look at Err (its Done is closed from the start, so a waiting
// stream looks again at once).
type goneOnSecondLook struct {
	context.Context
	looks atomic.Int32
}

func (c *goneOnSecondLook) Done() <-chan struct{} { return closed }

func (c *goneOnSecondLook) Err() error {
	if c.looks.Add(1) >= 2 {
		return context.Canceled
	}
	return nil
}

var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// TestRunEndsQuietlyWhenTheClientGoes: a stream whose client went away
// returns nil (nobody is there for an error), whenever it notices.
func TestRunEndsQuietlyWhenTheClientGoes(t *testing.T) {
	h := NewHub(Config{})
	s := newSubscriber("u", 1, func(error) {})
	h.register(s)
	st := &stream{hub: h, sub: s, req: Request{UserID: "u", Send: func(*podsv1.Event) error { return nil }}}
	if err := st.run(&goneOnSecondLook{Context: context.Background()}); err != nil {
		t.Errorf("run returned %v for a client that went away; want nil", err)
	}
}
