package stream

import (
	"context"
	"testing"
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
