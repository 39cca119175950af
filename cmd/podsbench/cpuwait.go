package main

import (
	"bufio"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// cpuWaits is a sample of podsd's pods_cpu_wait_seconds histogram: how long
// its goroutines waited for a CPU once runnable. Each bucket holds the
// count of waits up to its bound (cumulative), bounds ascending, the last
// one +Inf.
type cpuWaits []cpuWaitBucket

type cpuWaitBucket struct {
	le    float64 // seconds
	count float64
}

// scrapeCPUWaits reads the histogram from the server's /metrics.
func scrapeCPUWaits(baseURL string) (cpuWaits, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	res, err := client.Get(strings.TrimSuffix(baseURL, "/") + "/metrics")
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scraping /metrics: %s", res.Status)
	}
	return parseCPUWaits(bufio.NewScanner(res.Body))
}

// parseCPUWaits parses the pods_cpu_wait_seconds buckets out of metrics in
// the Prometheus text format.
func parseCPUWaits(lines *bufio.Scanner) (cpuWaits, error) {
	const prefix = `pods_cpu_wait_seconds_bucket{le="`
	var out cpuWaits
	for lines.Scan() {
		rest, ok := strings.CutPrefix(lines.Text(), prefix)
		if !ok {
			continue
		}
		bound, count, ok := strings.Cut(rest, `"} `)
		if !ok {
			return nil, fmt.Errorf("bad bucket %q", lines.Text())
		}
		le, err := strconv.ParseFloat(bound, 64) // "+Inf" parses too
		if err != nil {
			return nil, err
		}
		n, err := strconv.ParseFloat(count, 64)
		if err != nil {
			return nil, err
		}
		out = append(out, cpuWaitBucket{le, n})
	}
	if err := lines.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 || !math.IsInf(out[len(out)-1].le, 1) {
		return nil, fmt.Errorf("no pods_cpu_wait_seconds histogram in /metrics")
	}
	return out, nil
}

// quantile returns the bound, in milliseconds, of the bucket holding the
// q-th quantile (0 < q ≤ 1) of the waits counted between before and
// after; 0 if there were none. A quantile past the last finite bound is
// reported as that bound (podsd's is 10 s).
func (after cpuWaits) quantile(before cpuWaits, q float64) float64 {
	if len(before) != len(after) || len(after) == 0 {
		return 0
	}
	total := after[len(after)-1].count - before[len(before)-1].count
	if total <= 0 {
		return 0
	}
	bound := 0.0
	for i, b := range after {
		if !math.IsInf(b.le, 1) {
			bound = b.le
		}
		if b.count-before[i].count >= q*total {
			break
		}
	}
	return bound * 1000
}
