package main

import (
	"bufio"
	"strings"
	"testing"
)

func TestCPUWaitQuantiles(t *testing.T) {
	parse := func(text string) cpuWaits {
		t.Helper()
		w, err := parseCPUWaits(bufio.NewScanner(strings.NewReader(text)))
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	before := parse(`# HELP pods_cpu_wait_seconds ...
pods_cpu_wait_seconds_bucket{le="1e-05"} 10
pods_cpu_wait_seconds_bucket{le="0.001"} 10
pods_cpu_wait_seconds_bucket{le="0.01"} 10
pods_cpu_wait_seconds_bucket{le="+Inf"} 10
pods_cpu_wait_seconds_sum 0.001
`)
	// 100 waits since: 60 up to 10 µs, 39 up to 1 ms, 1 over 10 ms.
	after := parse(`pods_cpu_wait_seconds_bucket{le="1e-05"} 70
pods_cpu_wait_seconds_bucket{le="0.001"} 109
pods_cpu_wait_seconds_bucket{le="0.01"} 109
pods_cpu_wait_seconds_bucket{le="+Inf"} 110
`)
	for _, c := range []struct {
		q    float64
		want float64
	}{{0.5, 0.01}, {0.6, 0.01}, {0.61, 1}, {0.99, 1}, {1, 10}} {
		if got := after.quantile(before, c.q); got != c.want {
			t.Errorf("quantile %g: %g ms, want %g", c.q, got, c.want)
		}
	}
	if got := after.quantile(after, 0.5); got != 0 {
		t.Errorf("no waits: %g, want 0", got)
	}
	if _, err := parseCPUWaits(bufio.NewScanner(strings.NewReader("go_goroutines 5\n"))); err == nil {
		t.Error("metrics without the histogram parsed")
	}
}
