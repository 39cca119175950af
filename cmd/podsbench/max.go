package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"text/tabwriter"
	"time"
)

// maxRampRate bounds the max scenario's ramp, should every step be clean.
const maxRampRate = 100_000

// nextRate is the rate of the step after one at rate: factor times as
// high, rounded, and false past maxRampRate.
func nextRate(rate, factor float64) (float64, bool) {
	next := math.Round(rate * factor)
	return next, next <= maxRampRate
}

// flaw says why a step is not clean, or "" if it is: every message went
// out at the planned rate (within 5%) without error and reached every
// stream of its pod exactly once, no stream was cut, and the p99 stayed
// within maxP99.
func (r *result) flaw(maxP99 time.Duration) string {
	switch {
	case r.SendErrors > 0:
		return fmt.Sprintf("%d failed sends%s", r.SendErrors, causes(r.SendErrs))
	case r.Lost > 0:
		return fmt.Sprintf("%d lost deliveries", r.Lost)
	case r.Dups > 0 || r.Unexpected > 0:
		return fmt.Sprintf("%d duplicate and %d unexpected deliveries", r.Dups, r.Unexpected)
	case r.Reconnects > 0 || r.FailedSubscribes > 0:
		return fmt.Sprintf("%d stream reconnects%s", r.Reconnects, causes(r.StreamEnds))
	case r.SendRate < 0.95*r.Rate:
		return fmt.Sprintf("sent only %.0f msg/s", r.SendRate)
	case r.P99Ms > ms(maxP99):
		return fmt.Sprintf("p99 %.1f ms over %s", r.P99Ms, maxP99)
	}
	return ""
}

// maxResult is the figures of the max scenario.
type maxResult struct {
	Scenario     string  `json:"scenario"`
	ChangeSource string  `json:"change_source,omitempty"`
	Pods         int     `json:"pods"`
	Streams      int     `json:"streams"`
	SetupS       float64 `json:"setup_s"`
	StepS        float64 `json:"step_s"`
	MaxP99Ms     float64 `json:"max_p99_ms"`
	// BestStep is the number (from 1) of the clean step with the highest
	// rate; 0 if none was clean.
	BestStep  int       `json:"best_step"`
	BestRate  float64   `json:"best_rate"`
	StoppedBy string    `json:"stopped_by"` // why the ramp ended
	Steps     []*result `json:"steps"`
}

// maxRate runs the max scenario: steps of rising rate on the same streams
// until one is not clean.
func maxRate(ctx context.Context, opts options) (*maxResult, error) {
	f, err := newFleet(ctx, opts)
	if err != nil {
		return nil, err
	}
	if err := f.open(ctx); err != nil {
		return nil, err
	}
	defer f.close()
	r := &maxResult{
		Scenario: opts.name, ChangeSource: opts.changeSource, Pods: len(f.pods), Streams: len(f.members),
		SetupS: round3(f.setupTime.Seconds()), StepS: opts.load.duration.Seconds(), MaxP99Ms: ms(opts.maxP99),
	}
	for rate := opts.load.rate; ; {
		fmt.Fprintf(os.Stderr, "step %d: %g msg/s for %s\n", len(r.Steps)+1, rate, opts.load.duration)
		step, err := f.run(ctx, rate, opts.load.duration)
		if err != nil {
			return nil, err
		}
		step.Scenario, step.ChangeSource = opts.name, opts.changeSource
		r.Steps = append(r.Steps, step)
		flaw := step.flaw(opts.maxP99)
		fmt.Fprintf(os.Stderr, "step %d: %g msg/s: p50 %.2f ms, p99 %.2f ms, lost %d, dups %d, send errors %d: %s\n",
			len(r.Steps), rate, step.P50Ms, step.P99Ms, step.Lost, step.Dups, step.SendErrors, cmp.Or(flaw, "clean"))
		if flaw != "" {
			r.StoppedBy = fmt.Sprintf("step %d (%g msg/s): %s", len(r.Steps), rate, flaw)
			return r, nil
		}
		r.BestStep, r.BestRate = len(r.Steps), rate
		var ok bool
		if rate, ok = nextRate(rate, opts.factor); !ok {
			r.StoppedBy = fmt.Sprintf("every step up to %d msg/s was clean", maxRampRate)
			return r, nil
		}
	}
}

// print writes a line per step, then the best step's figures.
func (r *maxResult) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "step\tmsg/s\tsent/s\tsend p99 ms\tp50 ms\tp99 ms\tmax ms\tlost\tdups\terrors\treconnects\tserver CPU %\tpostgres CPU s\t")
	for i, s := range r.Steps {
		fmt.Fprintf(tw, "%d\t%g\t%.1f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%d\t%d\t%d\t%.0f\t%.2f\t\n", i+1, s.Rate, s.SendRate,
			s.SendP99Ms, s.P50Ms, s.P99Ms, s.MaxMs, s.Lost, s.Dups, s.SendErrors, s.Reconnects, s.ServerCPUPct, s.PostgresCPUS)
	}
	tw.Flush()
	fmt.Fprintf(w, "max%s: %d pods, %d streams, steps of %gs, clean = p99 ≤ %g ms and nothing lost, duplicated or failed\n",
		sourceNote(r.ChangeSource), r.Pods, r.Streams, r.StepS, r.MaxP99Ms)
	fmt.Fprintf(w, "stopped by %s\n", r.StoppedBy)
	if r.BestStep == 0 {
		fmt.Fprintln(w, "no step was clean: try a lower --rate")
		return
	}
	fmt.Fprintf(w, "highest clean rate: %g msg/s (step %d)\n", r.BestRate, r.BestStep)
	r.Steps[r.BestStep-1].print(w)
}
