package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pods-dev/pods/db"
)

// pgbenchTable is shaped like messages (the same columns, keys and
// defaults), without the triggers that give a message its seq and event.
// It is the benchmark's workload, not Pods's schema, so it lives here.
const pgbenchTable = `CREATE TABLE t (
	id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	pod             uuid NOT NULL,
	seq             bigserial,
	author          uuid NOT NULL DEFAULT gen_random_uuid(),
	idempotency_key text NOT NULL DEFAULT gen_random_uuid()::text,
	body            text NOT NULL,
	humor           boolean NOT NULL DEFAULT false,
	created_at      timestamptz NOT NULL DEFAULT now(),
	edited_at       timestamptz,
	UNIQUE (author, idempotency_key),
	UNIQUE (pod, seq)
)`

// pgbenchInsert inserts one message into one of 1000 pods.
const pgbenchInsert = `INSERT INTO t (pod, body) VALUES (('00000000-0000-4000-8000-' || lpad(:p::text, 12, '0'))::uuid, 'benchmark message ' || :p);`

// pgbenchScripts are pgbench's transactions, by name: the single-row
// INSERT, and the same with the pg_notify that podsd's notify change
// source adds to every write (notifying commits take a global lock).
var pgbenchScripts = []struct{ name, text string }{
	{"insert", "\\set p random(1, 1000)\n" + pgbenchInsert + "\n"},
	{"insert+notify", "\\set p random(1, 1000)\nBEGIN;\n" + pgbenchInsert + "\nSELECT pg_notify('pods_events', :p::text);\nCOMMIT;\n"},
}

// pgbenchResult is the figures of the pgbench scenario.
type pgbenchResult struct {
	Scenario  string       `json:"scenario"`
	Clients   int          `json:"clients"`
	DurationS float64      `json:"duration_s"` // of each run
	Runs      []pgbenchRun `json:"runs"`
}

// pgbenchRun is the figures of one pgbench run.
type pgbenchRun struct {
	Script       string  `json:"script"`
	Transactions int     `json:"transactions"`
	Failed       int     `json:"failed"`
	TPS          float64 `json:"tps"`
	LatencyAvgMs float64 `json:"latency_avg_ms"`
}

// runPgbench runs pgbench's single-row INSERT on a private Postgres with
// podsd's settings (fsync and synchronous_commit on).
func runPgbench(ctx context.Context, opts options) (*pgbenchResult, error) {
	binDir, err := db.FindBinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "podsbench-pgbench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	// As root, Postgres runs as the postgres user, who must get through.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	cluster, err := db.NewCluster(db.ClusterConfig{
		DataDir: filepath.Join(dir, "postgres"), BinDir: binDir,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return nil, err
	}
	if err := cluster.Start(ctx); err != nil {
		return nil, err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := cluster.Stop(stopCtx); err != nil {
			fmt.Fprintln(os.Stderr, "podsbench:", err)
		}
	}()
	if err := cluster.CreateDatabase(ctx, "bench"); err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, cluster.ConnString("bench"))
	if err != nil {
		return nil, err
	}
	_, err = conn.Exec(ctx, pgbenchTable)
	conn.Close(ctx)
	if err != nil {
		return nil, fmt.Errorf("creating the table: %w", err)
	}
	r := &pgbenchResult{Scenario: opts.name, Clients: opts.load.clients, DurationS: opts.load.duration.Seconds()}
	for _, script := range pgbenchScripts {
		fmt.Fprintf(os.Stderr, "pgbench %s: %d clients for %s\n", script.name, r.Clients, opts.load.duration)
		file := filepath.Join(dir, script.name+".sql")
		if err := os.WriteFile(file, []byte(script.text), 0o644); err != nil {
			return nil, err
		}
		cmd := exec.CommandContext(ctx, filepath.Join(binDir, "pgbench"), "--no-vacuum", "--protocol=prepared",
			"--client="+strconv.Itoa(r.Clients), "--jobs="+strconv.Itoa(min(r.Clients, runtime.NumCPU())),
			"--time="+strconv.Itoa(int(r.DurationS)), "--file="+file, cluster.ConnString("bench"))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("pgbench: %w\n%s", err, out)
		}
		run, err := parsePgbench(out)
		if err != nil {
			return nil, err
		}
		run.Script = script.name
		r.Runs = append(r.Runs, run)
	}
	return r, nil
}

// pgbenchFigures find the figures in pgbench's report.
var pgbenchFigures = map[string]*regexp.Regexp{
	"transactions": regexp.MustCompile(`(?m)^number of transactions actually processed: (\d+)`),
	"failed":       regexp.MustCompile(`(?m)^number of failed transactions: (\d+)`),
	"latency":      regexp.MustCompile(`(?m)^latency average = ([\d.]+) ms`),
	"tps":          regexp.MustCompile(`(?m)^tps = ([\d.]+)`),
}

// parsePgbench reads the figures of pgbench's report.
func parsePgbench(out []byte) (pgbenchRun, error) {
	v := make(map[string]float64)
	for name, re := range pgbenchFigures {
		m := re.FindSubmatch(out)
		if m == nil {
			return pgbenchRun{}, fmt.Errorf("pgbench's report has no %s:\n%s", name, out)
		}
		v[name], _ = strconv.ParseFloat(string(m[1]), 64)
	}
	return pgbenchRun{
		Transactions: int(v["transactions"]), Failed: int(v["failed"]),
		TPS: round3(v["tps"]), LatencyAvgMs: round3(v["latency"]),
	}, nil
}

func (r *pgbenchResult) print(w io.Writer) {
	tw, row := table(w)
	row("scenario", "%s: %d clients, %g s per script, fsync and synchronous_commit on", r.Scenario, r.Clients, r.DurationS)
	for _, run := range r.Runs {
		row(run.Script, "%.0f tps, latency %.2f ms on average, %d transactions, %d failed",
			run.TPS, run.LatencyAvgMs, run.Transactions, run.Failed)
	}
	tw.Flush()
}
