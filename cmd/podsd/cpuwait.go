package main

import (
	"math"
	"runtime/metrics"

	"github.com/prometheus/client_golang/prometheus"
)

// cpuWaitBounds are the bucket bounds of pods_cpu_wait_seconds, in
// seconds: fine enough to tell a wait of 1 ms from one of 5 ms (the Go
// collector's go_sched_latencies_seconds has a bucket per decade).
var cpuWaitBounds = []float64{
	10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6,
	1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 10,
}

// cpuWaitCollector exports the runtime's /sched/latencies:seconds, how
// long goroutines waited for a CPU once runnable (the runtime samples a
// share of the waits), as the histogram pods_cpu_wait_seconds. A runtime
// bucket counts under a bound it does not reach past; the sum adds up the
// runtime buckets' lower ends.
type cpuWaitCollector struct {
	desc *prometheus.Desc
}

func newCPUWaitCollector() cpuWaitCollector {
	return cpuWaitCollector{desc: prometheus.NewDesc("pods_cpu_wait_seconds",
		"How long goroutines waited for a CPU once runnable (the Go runtime's /sched/latencies:seconds).", nil, nil)}
}

func (c cpuWaitCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c cpuWaitCollector) Collect(ch chan<- prometheus.Metric) {
	sample := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindFloat64Histogram {
		return
	}
	h := sample[0].Value.Float64Histogram()
	buckets := make(map[float64]uint64, len(cpuWaitBounds))
	for _, bound := range cpuWaitBounds {
		buckets[bound] = 0
	}
	var count uint64
	var sum float64
	for i, n := range h.Counts { // bucket i holds waits in [Buckets[i], Buckets[i+1])
		if n == 0 {
			continue
		}
		count += n
		if low := h.Buckets[i]; !math.IsInf(low, 0) {
			sum += float64(n) * low
		}
		for _, bound := range cpuWaitBounds {
			if h.Buckets[i+1] <= bound {
				buckets[bound] += n
			}
		}
	}
	ch <- prometheus.MustNewConstHistogram(c.desc, count, sum, buckets)
}
