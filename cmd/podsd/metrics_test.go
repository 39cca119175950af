package main

import (
	"runtime"
	"sync"
	"testing"
)

// The metrics show how long goroutines waited for a CPU, in the buckets of
// cpuWaitBounds.
func TestMetricsIncludeCPUWaits(t *testing.T) {
	var wg sync.WaitGroup
	for range 100 { // goroutines that were runnable, then ran
		wg.Go(runtime.Gosched)
	}
	wg.Wait()
	families, err := newMetrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "pods_cpu_wait_seconds" {
			continue
		}
		h := f.GetMetric()[0].GetHistogram()
		if h.GetSampleCount() == 0 { // the runtime samples one wait in 8
			t.Error("no waits counted")
		}
		var last uint64
		for i, b := range h.GetBucket() {
			if b.GetUpperBound() != cpuWaitBounds[i] || b.GetCumulativeCount() < last || b.GetCumulativeCount() > h.GetSampleCount() {
				t.Errorf("bucket %d: ≤ %g: %d (previous %d, of %d)", i, b.GetUpperBound(), b.GetCumulativeCount(), last, h.GetSampleCount())
			}
			last = b.GetCumulativeCount()
		}
		if len(h.GetBucket()) != len(cpuWaitBounds) {
			t.Errorf("%d buckets, want %d", len(h.GetBucket()), len(cpuWaitBounds))
		}
		return
	}
	t.Fatal("no pods_cpu_wait_seconds")
}
