package main

import (
	"errors"
	"strings"
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

func TestAnalyze(t *testing.T) {
	ms := func(n int) int64 { return int64(time.Duration(n) * time.Millisecond) }
	// Messages 0 and 1 went to pod 0, 2 to pod 1 but failed.
	s := newSends("r", 3)
	for i, p := range []int32{0, 0, 1} {
		s.pod[i] = p
		s.start[i].Store(ms(10 * (i + 1)))
		s.end[i] = ms(10*(i+1) + 5)
	}
	s.err[2] = errors.New("unavailable")
	logs := [][]streamLog{
		{
			{deliveries: []delivery{{1, ms(22)}, {0, ms(11)}}},
			{deliveries: []delivery{{0, ms(14)}, {0, ms(15)}}, reconnects: 1, errs: []string{"resource_exhausted"}},
		},
		{{deliveries: []delivery{{2, ms(31)}}}},
	}
	r := analyze(logs, s, ms(10), ms(40))
	if r.Sent != 3 || r.SendErrors != 1 || r.Expected != 4 || r.Delivered != 3 || r.Lost != 1 ||
		r.Dups != 1 || r.Unexpected != 1 || r.Reconnects != 1 || r.StreamEnds["resource_exhausted"] != 1 {
		t.Errorf("analyze = %+v", r)
	}
	// Latencies 1, 2 and 4 ms.
	if r.P50Ms != 2 || r.MaxMs != 4 || r.SendP50Ms != 5 {
		t.Errorf("p50 %g ms, max %g ms, send p50 %g ms; want 2, 4, 5", r.P50Ms, r.MaxMs, r.SendP50Ms)
	}
}

func TestBrokenGuaranteesFailTheRun(t *testing.T) {
	if err := (&result{}).fault(); err != nil {
		t.Fatalf("clean run: %v", err)
	}
	if err := (&result{Dups: 1}).fault(); err == nil {
		t.Fatal("a duplicate passed")
	}
	served := &stormResult{Clients: 3, catchUp: catchUp{Ready: 3, CaughtUp: 3}}
	if err := served.fault(); err != nil {
		t.Fatalf("every client served: %v", err)
	}
	if err := (&stormResult{Clients: 3, catchUp: catchUp{Ready: 3, CaughtUp: 2}}).fault(); err == nil {
		t.Fatal("a client that never caught up passed")
	}
	if err := (&stormResult{Clients: 3, catchUp: catchUp{Ready: 3, CaughtUp: 3, Lost: 1}}).fault(); err == nil {
		t.Fatal("a lost delivery passed")
	}
}

func TestPrintSlowSends(t *testing.T) {
	ms := func(n int) int64 { return int64(time.Duration(n) * time.Millisecond) }
	s := newSends("k", 4)
	s.pod = []int32{0, 1, 2, 3}
	s.start[0].Store(ms(10)) // fast
	s.end[0] = ms(11)
	s.start[1].Store(ms(20)) // slow
	s.end[1] = ms(25)
	s.start[2].Store(ms(30)) // slow, but failed
	s.end[2] = ms(40)
	s.err[2] = errors.New("boom")
	// 3 was not sent
	var out strings.Builder
	printSlowSends(&out, s, 2*time.Millisecond)
	want := "slow send " + clk.base.Add(20*time.Millisecond).Format("15:04:05.000000") + "    5.000 ms (pod 1)\n"
	if out.String() != want {
		t.Errorf("printSlowSends wrote %q, want %q", out.String(), want)
	}
}
