package main

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	sorted := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{
		{0.1, 1}, {10, 1}, {50, 5}, {51, 6}, {95, 10}, {99, 10}, {100, 10},
	} {
		if got := percentile(sorted, tc.p); got != tc.want {
			t.Errorf("percentile(1..10, %g) = %d, want %d", tc.p, got, tc.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("percentile(nil, 50) = %d, want 0", got)
	}
}

func TestSendsIndex(t *testing.T) {
	s := newSends("ab12", 3)
	if i, ok := s.index(s.key(2)); !ok || i != 2 {
		t.Errorf("index(key(2)) = %d, %v", i, ok)
	}
	for _, key := range []string{"ab12-3", "ab12--1", "ab12-x", "cd34-1", "ab121"} {
		if i, ok := s.index(key); ok {
			t.Errorf("index(%q) = %d, want none", key, i)
		}
	}
}
