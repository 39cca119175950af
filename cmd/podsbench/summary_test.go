package main

import (
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	lines := strings.Join([]string{
		`{"scenario":"mid","change_source":"wal","streams":5000,"rate":500,"send_rate":499.5,"p50_ms":5.1,"p99_ms":27.25,"lost":1,"dups":2,"send_errors":3,"server_cpu_pct":70}`,
		`{"scenario":"max","change_source":"notify","streams":5000,"step_s":10,"best_step":2,"steps":[{"rate":100,"p50_ms":4},{"rate":150,"p50_ms":4.5,"p99_ms":30}]}`,
		`{"scenario":"max","streams":5000,"step_s":10,"best_step":0,"steps":[{"rate":100}]}`,
		`{"scenario":"idle","streams":5000,"conns":5000,"kib_per_stream":42.25}`,
		`{"scenario":"storm","clients":10000,"messages":2000,"conns":100,"all_caught_up_s":12.5,"caught_up_p50_s":3,"caught_up_p99_s":11}`,
		`{"scenario":"pgbench","clients":16,"runs":[{"script":"insert","tps":15000.4},{"script":"insert+notify","tps":3400}]}`,
	}, "\n")
	var b strings.Builder
	if err := summarize(&b, strings.NewReader(lines)); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	for _, want := range []string{
		"scenario  source  load",
		"mid       wal     5000 streams, 500 msg/s",
		"500 msg/s sent, server CPU 70%",
		"27.25 ms  1/2/3",
		"best clean 150 msg/s",
		"4.50 ms  30.00 ms  0/0/0\n",
		"no clean step",
		"42.2 KiB per stream",
		"all caught up in 12.50 s",
		"insert 15000 tps, insert+notify 3400 tps",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the summary has no %q:\n%s", want, got)
		}
	}
	if err := summarize(&b, strings.NewReader("podsd: oops")); err == nil {
		t.Error("summarize accepted a line that is not JSON")
	}
}

func TestParsePgbench(t *testing.T) {
	out := `pgbench (15.8 (Debian 15.8-0+deb12u1))
transaction type: /tmp/insert.sql
scaling factor: 1
query mode: prepared
number of clients: 16
number of threads: 2
maximum number of tries: 1
duration: 15 s
number of transactions actually processed: 232084
number of failed transactions: 0 (0.000%)
latency average = 1.034 ms
initial connection time = 12.345 ms
tps = 15470.866123 (without initial connection time)
`
	got, err := parsePgbench([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	want := pgbenchRun{Transactions: 232084, TPS: 15470.866, LatencyAvgMs: 1.034}
	if got != want {
		t.Errorf("parsePgbench = %+v, want %+v", got, want)
	}
	if _, err := parsePgbench([]byte("pgbench: error: connection failed")); err == nil {
		t.Error("parsePgbench accepted a report without figures")
	}
}

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		args          []string
		pods, conns   int
		clients, msgs int
	}{
		{[]string{"--scenario", "mid"}, 1000, 5000, 0, 0},
		{[]string{"--scenario", "storm"}, 2000, 100, 0, 2000},
		{[]string{"--scenario", "storm", "--clients", "1001", "--messages", "10"}, 201, 11, 0, 10},
		{[]string{"--scenario", "idle", "--clients", "500", "--conns", "7"}, 100, 7, 0, 0},
		{[]string{"--scenario", "pgbench", "--clients", "8"}, 0, 1, 8, 0},
	} {
		o, err := parseFlags(tc.args)
		if err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		if o.load.pods != tc.pods || o.conns != tc.conns || o.load.clients != tc.clients || o.load.messages != tc.msgs {
			t.Errorf("%v: pods %d, conns %d, clients %d, messages %d; want %d, %d, %d, %d", tc.args,
				o.load.pods, o.conns, o.load.clients, o.load.messages, tc.pods, tc.conns, tc.clients, tc.msgs)
		}
	}
	for _, args := range [][]string{
		{"--scenario", "nope"}, {"--pods", "3", "--clients", "4"}, {"--factor", "1"}, {"--url", "x", "--start-server"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
