package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
)

// summaryLine holds what the summary shows of any scenario's JSON line.
type summaryLine struct {
	Scenario     string  `json:"scenario"`
	ChangeSource string  `json:"change_source"`
	Pods         int     `json:"pods"`
	Streams      int     `json:"streams"`
	Rate         float64 `json:"rate"`
	SendRate     float64 `json:"send_rate"`
	P50Ms        float64 `json:"p50_ms"`
	P99Ms        float64 `json:"p99_ms"`
	Lost         int     `json:"lost"`
	Dups         int     `json:"dups"`
	SendErrors   int     `json:"send_errors"`
	ServerCPUPct float64 `json:"server_cpu_pct"`
	// max
	BestStep int           `json:"best_step"`
	StepS    float64       `json:"step_s"`
	Steps    []summaryLine `json:"steps"`
	// idle
	Conns        int     `json:"conns"`
	KiBPerStream float64 `json:"kib_per_stream"`
	// storm
	Clients      int     `json:"clients"`
	Messages     int     `json:"messages"`
	AllCaughtUpS float64 `json:"all_caught_up_s"`
	CaughtUpP50S float64 `json:"caught_up_p50_s"`
	CaughtUpP99S float64 `json:"caught_up_p99_s"`
	// pgbench
	Runs []pgbenchRun `json:"runs"`
}

// cells are the line's row of the summary table, under summaryHeader.
func (l summaryLine) cells() []string {
	source := l.ChangeSource
	if source == "" {
		source = "-"
	}
	faults := func(l summaryLine) string { return fmt.Sprintf("%d/%d/%d", l.Lost, l.Dups, l.SendErrors) }
	switch l.Scenario {
	case "max":
		load := fmt.Sprintf("%d streams, steps of %gs", l.Streams, l.StepS)
		if l.BestStep < 1 || l.BestStep > len(l.Steps) {
			return []string{l.Scenario, source, load, "no clean step", "-", "-", "-"}
		}
		best := l.Steps[l.BestStep-1]
		return []string{l.Scenario, source, load, fmt.Sprintf("best clean %g msg/s", best.Rate),
			ms2(best.P50Ms), ms2(best.P99Ms), faults(best)}
	case "idle":
		return []string{l.Scenario, source, fmt.Sprintf("%d streams, %d conns", l.Streams, l.Conns),
			fmt.Sprintf("%.1f KiB per stream", l.KiBPerStream), "-", "-", "-"}
	case "storm":
		caughtUp := "not all caught up"
		if l.AllCaughtUpS > 0 {
			caughtUp = fmt.Sprintf("all caught up in %.2f s", l.AllCaughtUpS)
		}
		return []string{l.Scenario, source, fmt.Sprintf("%d clients, %d msgs, %d conns", l.Clients, l.Messages, l.Conns),
			caughtUp, fmt.Sprintf("%.2f s", l.CaughtUpP50S), fmt.Sprintf("%.2f s", l.CaughtUpP99S), faults(l)}
	case "pgbench":
		var tps []string
		for _, r := range l.Runs {
			tps = append(tps, fmt.Sprintf("%s %.0f tps", r.Script, r.TPS))
		}
		return []string{l.Scenario, "-", fmt.Sprintf("%d clients", l.Clients), strings.Join(tps, ", "), "-", "-", "-"}
	}
	return []string{l.Scenario, source, fmt.Sprintf("%d streams, %g msg/s", l.Streams, l.Rate),
		fmt.Sprintf("%.0f msg/s sent, server CPU %.0f%%", l.SendRate, l.ServerCPUPct), ms2(l.P50Ms), ms2(l.P99Ms), faults(l)}
}

// summaryHeader names the summary table's columns.
var summaryHeader = []string{"scenario", "source", "load", "result", "p50", "p99", "lost/dups/errors"}

func ms2(x float64) string { return fmt.Sprintf("%.2f ms", x) }

// summarize writes a table with a row per JSON line read from r.
func summarize(w io.Writer, r io.Reader) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(cells []string) { fmt.Fprintln(tw, strings.Join(cells, "\t")) }
	row(summaryHeader)
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l summaryLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return fmt.Errorf("reading a result line: %w", err)
		}
		row(l.cells())
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return tw.Flush()
}

// summarizeFile writes the summary table of a file of JSON lines.
func summarizeFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return summarize(w, f)
}
