package main

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestAnalyzeStorm(t *testing.T) {
	// at is a clock time: ms milliseconds after the storm started at 1 s.
	at := func(ms int) int64 { return int64(time.Second + time.Duration(ms)*time.Millisecond) }
	// Messages 0 and 1 went to pod 0, 2 and 3 to pod 1; 3 failed.
	s := newSends("r", 4)
	for i, p := range []int32{0, 0, 1, 1} {
		s.pod[i] = p
		s.start[i].Store(1)
	}
	s.err[3] = errors.New("unavailable")
	logs := [][]streamLog{
		{
			{readyAt: at(100), deliveries: []delivery{{0, at(200)}, {1, at(300)}}}, // caught up at 300
			{readyAt: at(400), deliveries: []delivery{{1, at(150)}, {0, at(150)}}}, // caught up at ready
			{readyAt: at(100), deliveries: []delivery{{0, at(200)}, {0, at(250)}}}, // a dup, 1 lost
			{deliveries: []delivery{{0, at(200)}, {1, at(200)}}, failures: 1, errs: []string{"deadline_exceeded"}},
		},
		{
			{readyAt: at(50), deliveries: []delivery{{2, at(500)}, {3, at(500)}, {0, at(500)}}}, // 2 unexpected
		},
	}
	got := analyzeStorm(logs, s, at(0))
	want := catchUp{
		Expected: 9, Delivered: 8, Lost: 1, Dups: 1, Unexpected: 2, Ready: 4, CaughtUp: 3,
		CaughtUpP50S: 0.4, CaughtUpP99S: 0.5, FailedSubscribes: 1,
		StreamEnds: map[string]int{"deadline_exceeded": 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("analyzeStorm =\n%+v, want\n%+v", got, want)
	}

	// Everyone caught up.
	s = newSends("r", 2)
	s.start[0].Store(1)
	s.start[1].Store(1)
	logs = [][]streamLog{{{readyAt: at(1000), deliveries: []delivery{{0, at(2000)}, {1, at(1500)}}}}}
	got = analyzeStorm(logs, s, at(0))
	if got.AllReadyS != 1 || got.AllCaughtUpS != 2 {
		t.Errorf("all ready after %g s, caught up after %g s; want 1 s, 2 s", got.AllReadyS, got.AllCaughtUpS)
	}
}
