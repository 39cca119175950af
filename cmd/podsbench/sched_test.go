package main

import (
	"bufio"
	"strings"
	"testing"
)

func TestSchedQuantiles(t *testing.T) {
	parse := func(text string) schedBuckets {
		t.Helper()
		b, err := parseSched(bufio.NewScanner(strings.NewReader(text)))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	before := parse(`# HELP go_sched_latencies_seconds ...
go_sched_latencies_seconds_bucket{le="0.0001"} 10
go_sched_latencies_seconds_bucket{le="0.001"} 10
go_sched_latencies_seconds_bucket{le="0.01"} 10
go_sched_latencies_seconds_bucket{le="+Inf"} 10
go_sched_latencies_seconds_sum 0.001
`)
	// 100 waits since: 60 up to 0.1 ms, 39 up to 1 ms, 1 over 10 ms.
	after := parse(`go_sched_latencies_seconds_bucket{le="0.0001"} 70
go_sched_latencies_seconds_bucket{le="0.001"} 109
go_sched_latencies_seconds_bucket{le="0.01"} 109
go_sched_latencies_seconds_bucket{le="+Inf"} 110
`)
	for _, c := range []struct {
		q    float64
		want float64
	}{{0.5, 0.1}, {0.6, 0.1}, {0.61, 1}, {0.99, 1}, {1, 10}} {
		if got := after.quantile(before, c.q); got != c.want {
			t.Errorf("quantile %g: %g ms, want %g", c.q, got, c.want)
		}
	}
	if got := after.quantile(after, 0.5); got != 0 {
		t.Errorf("no waits: %g, want 0", got)
	}
	if _, err := parseSched(bufio.NewScanner(strings.NewReader("go_goroutines 5\n"))); err == nil {
		t.Error("metrics without the histogram parsed")
	}
}
