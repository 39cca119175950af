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

// schedBuckets is a sample of podsd's go_sched_latencies_seconds
// histogram: how long its goroutines waited for a CPU once runnable. Each
// bucket holds the count of waits up to its bound (cumulative), bounds
// ascending.
type schedBuckets []schedBucket

type schedBucket struct {
	le    float64 // seconds
	count float64
}

// scrapeSched reads the scheduler histogram from the server's /metrics.
func scrapeSched(baseURL string) (schedBuckets, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	res, err := client.Get(strings.TrimSuffix(baseURL, "/") + "/metrics")
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scraping /metrics: %s", res.Status)
	}
	return parseSched(bufio.NewScanner(res.Body))
}

// parseSched parses the go_sched_latencies_seconds buckets out of metrics
// in the Prometheus text format.
func parseSched(lines *bufio.Scanner) (schedBuckets, error) {
	const prefix = `go_sched_latencies_seconds_bucket{le="`
	var out schedBuckets
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
		out = append(out, schedBucket{le, n})
	}
	if err := lines.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no go_sched_latencies_seconds in /metrics")
	}
	return out, nil
}

// quantile returns the bound of the bucket holding the q-th quantile
// (0 < q ≤ 1) of the waits counted between before and after, in
// milliseconds, or 0 if there were none. The last finite bound stands for
// +Inf.
func (after schedBuckets) quantile(before schedBuckets, q float64) float64 {
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
	return round3(bound * 1000)
}
