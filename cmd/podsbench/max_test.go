package main

import (
	"strings"
	"testing"
	"time"
)

func TestNextRate(t *testing.T) {
	var got []float64
	for rate, ok := 100.0, true; ok && len(got) < 50; rate, ok = nextRate(rate, 1.5) {
		got = append(got, rate)
	}
	want := []float64{100, 150, 225, 338, 507, 761, 1142, 1713}
	for i, w := range want {
		if got[i] != w {
			t.Fatalf("rates = %v, want them to start with %v", got[:len(want)], want)
		}
	}
	if last := got[len(got)-1]; last > maxRampRate || len(got) == 50 {
		t.Errorf("the ramp ends at %g after %d steps, want it to stop at %d", last, len(got), maxRampRate)
	}
}

func TestFlaw(t *testing.T) {
	clean := result{Rate: 500, SendRate: 490, P99Ms: 49.9}
	for _, tc := range []struct {
		name   string
		change func(r *result)
		want   string // a part of the flaw; empty: clean
	}{
		{"clean", func(r *result) {}, ""},
		{"slow", func(r *result) { r.P99Ms = 50.1 }, "p99 50.1 ms over 50ms"},
		{"lost", func(r *result) { r.Lost = 1 }, "1 lost"},
		{"dup", func(r *result) { r.Dups = 2 }, "2 duplicate"},
		{"failed send", func(r *result) { r.SendErrors, r.SendErrs = 3, map[string]int{"unavailable": 3} }, "3 failed sends map[unavailable:3]"},
		{"cut", func(r *result) { r.Reconnects = 1 }, "1 stream reconnects"},
		{"behind", func(r *result) { r.SendRate = 470 }, "sent only 470 msg/s"},
	} {
		r := clean
		tc.change(&r)
		got := r.flaw(50 * time.Millisecond)
		if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
			t.Errorf("%s: flaw = %q, want %q", tc.name, got, tc.want)
		}
	}
}
