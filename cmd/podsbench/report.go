package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"text/tabwriter"
	"time"
)

// result holds the figures of a phase of load: a run of seed, mid or high
// (its JSON form is then podsbench's last line), or a step of max.
type result struct {
	Scenario     string  `json:"scenario,omitempty"`
	ChangeSource string  `json:"change_source,omitempty"` // empty: a server podsbench did not start
	Protocol     string  `json:"protocol"`
	Pods         int     `json:"pods"`
	Streams      int     `json:"streams"`
	Rate         float64 `json:"rate"`
	DurationS    float64 `json:"duration_s"`
	SetupS       float64 `json:"setup_s"`

	Sent       int            `json:"sent"`
	SendErrors int            `json:"send_errors"`
	SendErrs   map[string]int `json:"send_errors_by_cause,omitempty"`
	SendRate   float64        `json:"send_rate"`
	SendP50Ms  float64        `json:"send_p50_ms"`
	SendP99Ms  float64        `json:"send_p99_ms"`

	Expected         int            `json:"expected"`
	Delivered        int            `json:"delivered"`
	Lost             int            `json:"lost"`
	Dups             int            `json:"dups"`
	Unexpected       int            `json:"unexpected"`
	Reconnects       int            `json:"reconnects"`
	FailedSubscribes int            `json:"failed_subscribes"`
	StreamEnds       map[string]int `json:"stream_ends_by_cause,omitempty"`
	DeliveriesPerS   float64        `json:"deliveries_per_s"`
	P50Ms            float64        `json:"p50_ms"`
	P95Ms            float64        `json:"p95_ms"`
	P99Ms            float64        `json:"p99_ms"`
	MaxMs            float64        `json:"max_ms"`

	usage
}

// usage is the CPU time and memory used over a measured stretch.
type usage struct {
	// MeasuredS is the wall time over which CPU time is measured.
	MeasuredS      float64 `json:"measured_s"`
	ServerCPUS     float64 `json:"server_cpu_s,omitempty"`
	ServerCPUPct   float64 `json:"server_cpu_pct,omitempty"`
	PostgresCPUS   float64 `json:"postgres_cpu_s,omitempty"`
	ServerRSSPeakM float64 `json:"server_rss_peak_mib,omitempty"`
	BenchCPUS      float64 `json:"bench_cpu_s"`
	ServerStatsErr string  `json:"server_stats_error,omitempty"`
	// How long the server's goroutines waited for a CPU once runnable: the
	// bound of the bucket of its pods_cpu_wait_seconds holding the p50 and
	// the p99.
	ServerCPUWaitP50Ms float64 `json:"server_cpu_wait_p50_ms,omitempty"`
	ServerCPUWaitP99Ms float64 `json:"server_cpu_wait_p99_ms,omitempty"`
}

// analyze computes the delivery figures of a phase from what each stream
// saw, by pod and member: every message sent without error is expected
// once on every stream of its pod.
func analyze(logs [][]streamLog, s *sends, phaseStart, sendEnd int64) *result {
	r := &result{SendErrs: map[string]int{}, StreamEnds: map[string]int{}}
	expected := make([][]int32, len(logs)) // per pod, the messages it should get
	var sendTimes []time.Duration
	for i := range s.pod {
		start := s.start[i].Load()
		if start == 0 {
			continue
		}
		r.Sent++
		if err := s.err[i]; err != nil {
			r.SendErrors++
			r.SendErrs[errString(err)]++
			continue
		}
		expected[s.pod[i]] = append(expected[s.pod[i]], int32(i))
		sendTimes = append(sendTimes, time.Duration(s.end[i]-start))
	}
	r.SendRate = round3(float64(r.Sent) / time.Duration(sendEnd-phaseStart).Seconds())
	slices.Sort(sendTimes)
	r.SendP50Ms, r.SendP99Ms = ms(percentile(sendTimes, 50)), ms(percentile(sendTimes, 99))

	var latencies []time.Duration
	events, lastAt := 0, phaseStart
	for pi, pod := range logs {
		for _, l := range pod {
			d := l.deliveries
			events += len(d)
			slices.SortStableFunc(d, func(a, b delivery) int { return cmp.Compare(a.msg, b.msg) })
			got := 0
			for k, x := range d {
				switch {
				case k > 0 && d[k-1].msg == x.msg:
					r.Dups++
				case s.err[x.msg] != nil || int(s.pod[x.msg]) != pi:
					r.Unexpected++
				default:
					got++
					latencies = append(latencies, time.Duration(x.at-s.start[x.msg].Load()))
					lastAt = max(lastAt, x.at)
				}
			}
			r.Expected += len(expected[pi])
			r.Delivered += got
			r.Reconnects += l.reconnects
			r.FailedSubscribes += l.failures
			for _, e := range l.errs {
				r.StreamEnds[e]++
			}
		}
	}
	r.Lost = r.Expected - r.Delivered
	if lastAt > phaseStart {
		r.DeliveriesPerS = round3(float64(events) / time.Duration(lastAt-phaseStart).Seconds())
	}
	slices.Sort(latencies)
	r.P50Ms, r.P95Ms = ms(percentile(latencies, 50)), ms(percentile(latencies, 95))
	r.P99Ms, r.MaxMs = ms(percentile(latencies, 99)), ms(percentile(latencies, 100))
	return r
}

// printSlowSends writes to w, in the order they were sent, the sends of s
// that succeeded and took longer than threshold, each with its wall-clock
// start: sends slow together point at a stall of the server or the
// database at that moment, which its logs or a trace can explain.
func printSlowSends(w io.Writer, s *sends, threshold time.Duration) {
	for i := range s.pod {
		start := s.start[i].Load()
		if start == 0 || s.err[i] != nil {
			continue
		}
		if d := time.Duration(s.end[i] - start); d > threshold {
			fmt.Fprintf(w, "slow send %s %8.3f ms (pod %d)\n",
				clk.base.Add(time.Duration(start)).Format("15:04:05.000000"), ms(d), s.pod[i])
		}
	}
}

// add sets the CPU time used between two samples and the server's peak
// RSS.
func (r *usage) add(pid int, before, after resources) {
	r.MeasuredS = round3(after.wall.Sub(before.wall).Seconds())
	r.BenchCPUS = round3((after.bench - before.bench).Seconds())
	r.ServerCPUWaitP50Ms, r.ServerCPUWaitP99Ms = after.waits.quantile(before.waits, 0.5), after.waits.quantile(before.waits, 0.99)
	if pid == 0 {
		return
	}
	if err := cmp.Or(before.err, after.err); err != nil {
		r.ServerStatsErr = err.Error()
		return
	}
	server, descendants := cpuDelta(before.server, after.server)
	r.ServerCPUS, r.PostgresCPUS = round3(server.Seconds()), round3(descendants.Seconds())
	r.ServerCPUPct = round3(100 * server.Seconds() / r.MeasuredS)
	peak, err := memStatus(pid, "VmHWM")
	if err != nil {
		r.ServerStatsErr = err.Error()
		return
	}
	r.ServerRSSPeakM = round3(float64(peak) / (1 << 20))
}

// percentile returns the p-th percentile (0 < p ≤ 100) of sorted by the
// nearest-rank method, or 0 if sorted is empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// ms is d in milliseconds, to the microsecond.
func ms(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond)) }

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// print writes the figures as a table.
func (r *result) print(w io.Writer) {
	tw, row := table(w)
	row("scenario", "%s (%s%s): %d pods, %d streams, %g msg/s for %gs", r.Scenario, r.Protocol, sourceNote(r.ChangeSource), r.Pods, r.Streams, r.Rate, r.DurationS)
	row("setup", "%.1f s", r.SetupS)
	row("sent", "%d (%.1f/s), %d errors%s", r.Sent, r.SendRate, r.SendErrors, causes(r.SendErrs))
	row("SendMessage", "p50 %.2f ms, p99 %.2f ms", r.SendP50Ms, r.SendP99Ms)
	row("deliveries", "%d of %d expected (%.0f/s)", r.Delivered, r.Expected, r.DeliveriesPerS)
	row("lost / dups / unexpected", "%d / %d / %d", r.Lost, r.Dups, r.Unexpected)
	row("stream reconnects", "%d, %d failed attempts%s", r.Reconnects, r.FailedSubscribes, causes(r.StreamEnds))
	row("send→delivery", "p50 %.2f ms, p95 %.2f ms, p99 %.2f ms, max %.2f ms", r.P50Ms, r.P95Ms, r.P99Ms, r.MaxMs)
	r.usage.print(row)
	tw.Flush()
}

// table returns a tabwriter on w and a function that writes one row of it
// (a name, then format applied to args); flush the tabwriter at the end.
func table(w io.Writer) (*tabwriter.Writer, func(name, format string, args ...any)) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	return tw, func(name, format string, args ...any) {
		fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{name}, args...)...)
	}
}

// print writes the usage as rows of a table.
func (r *usage) print(row func(name, format string, args ...any)) {
	switch {
	case r.ServerStatsErr != "":
		row("server", "no figures: %s", r.ServerStatsErr)
	case r.ServerRSSPeakM > 0:
		row("server CPU", "%.2f s in %.1f s (%.0f%% of one core), postgres %.2f s", r.ServerCPUS, r.MeasuredS, r.ServerCPUPct, r.PostgresCPUS)
		row("server peak RSS", "%.1f MiB (podsd only)", r.ServerRSSPeakM)
	}
	if r.ServerCPUWaitP99Ms > 0 {
		row("server CPU waits", "p50 ≤ %g ms, p99 ≤ %g ms (goroutines runnable until they ran)", r.ServerCPUWaitP50Ms, r.ServerCPUWaitP99Ms)
	}
	row("podsbench CPU", "%.2f s in %.1f s", r.BenchCPUS, r.MeasuredS)
}

// causes formats counts by cause, if there are any.
func causes(counts map[string]int) string {
	if len(counts) == 0 {
		return ""
	}
	return fmt.Sprint(" ", counts)
}

// sourceNote names the server's change source, if podsbench started it.
func sourceNote(source string) string {
	if source == "" {
		return ""
	}
	return ", " + source
}

// printJSON writes v as one line of JSON.
func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func (r *result) fault() error { return deliveryFault(r.Lost, r.Dups, r.Unexpected) }
