package main

import "testing"

// The metrics show how long goroutines wait for a CPU.
func TestMetricsIncludeSchedulerLatency(t *testing.T) {
	families, err := newMetrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "go_sched_latencies_seconds" && f.GetType().String() == "HISTOGRAM" {
			return
		}
	}
	t.Fatal("no go_sched_latencies_seconds histogram")
}
