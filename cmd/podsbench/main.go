// Command podsbench is a load generator for a Pods server: it measures how
// long a chat message takes from SendMessage to every member's Subscribe
// stream, how much load that stays fast under, what an open stream costs,
// and how fast clients catch up after a mass reconnect.
//
//	go run ./cmd/podsbench --scenario seed          # builds and starts its own podsd
//	go run ./cmd/podsbench --scenario mid --url http://127.0.0.1:8080 --pid 1234
//	go run ./cmd/podsbench --summary results.jsonl  # a table of earlier runs' JSON lines
//
// It creates P pods of 5 members. Every member is one user (signed up as
// bench<run>u<n>) with one RealtimeService/Subscribe stream, calling over
// h2c (or HTTP/1.1 with --http1) on its own connection, or on one of
// --conns connections shared round-robin. In a phase of load, for D
// seconds, it posts R messages per second in total, each from a random
// member of a random pod, through a pool of sender goroutines paced by a
// scheduler, so a slow send does not delay the next ones.
//
// Every stream, the sender's own included, records when each messageCreated
// event arrives. A phase reports the send→delivery latency (p50, p95, p99,
// max, from the moment just before SendMessage started), deliveries per
// second, expected and actual deliveries, lost deliveries (a member never
// got a message within --drain after the last send), duplicates (a message
// twice on one stream), send errors and stream reconnects. A stream that
// ends early resubscribes with its cursor, as a real client would.
//
// Scenarios (--pods or --clients, --rate and --duration override them):
//
//	seed      40 pods,   40 msg/s, 20 s
//	mid     1000 pods,  500 msg/s, 20 s
//	high    2000 pods, 2000 msg/s, 20 s
//	max     1000 pods, steps of 10 s from 100 msg/s, ×1.5 (--factor) per
//	        step, until a step is not clean: its p99 is over 50 ms
//	        (--max-p99), a delivery is lost or duplicated, a send fails,
//	        a stream is cut, or fewer than 95% of the planned messages
//	        went out. It reports the highest clean rate and that step.
//	idle    5000 streams (--clients) that only listen: the server's RSS
//	        before they open and after they are open and --settle has
//	        passed, per stream. A server podsbench started is restarted
//	        after setup, so that the baseline is a fresh process.
//	storm   10000 clients (--clients) with a stream each, sharing
//	        clients/100 connections: all streams close, 2000 messages
//	        (--messages) are sent, then every client resubscribes at once
//	        with its cursor, on new connections. It reports the time until
//	        every client got ready and every message of its pod, loss and
//	        duplicates.
//	pgbench   16 clients (--clients), 15 s of single-row INSERTs into a
//	        table shaped like messages, on a private Postgres set up as
//	        podsd's own: the database's ceiling, without Pods; then 15 s
//	        more with a pg_notify in each transaction, as the notify change
//	        source does. Needs no podsd.
//
// Without --url, podsbench builds ./cmd/podsd (run it from the module root),
// starts it on a free port with a private Postgres in a temporary folder,
// cheap password hashing, a high per-user write limit, --change-source and
// --db-max-conns, and stops it and removes the folder at the end. It then
// reports the server's CPU time over each measured stretch and its peak RSS
// (podsd alone; Postgres runs in its own processes, whose CPU time is
// reported separately). With --url, pass --pid to get the same figures for
// a server you started.
//
// Progress goes to stderr every second, then a table; the last line, on
// stdout, is one JSON object with the same figures.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"
)

// membersPerPod is how many members every pod gets.
const membersPerPod = 5

// scenario is one named load.
type scenario struct {
	pods     int
	rate     float64       // messages per second, in total; max: the first step's
	duration time.Duration // max: each step's
	messages int           // storm: messages sent while the clients are away
	clients  int           // pgbench: its connections
	perConn  int           // members per shared connection; 0: one each
}

var scenarios = map[string]scenario{
	"seed":    {pods: 40, rate: 40, duration: 20 * time.Second},
	"mid":     {pods: 1000, rate: 500, duration: 20 * time.Second},
	"high":    {pods: 2000, rate: 2000, duration: 20 * time.Second},
	"max":     {pods: 1000, rate: 100, duration: 10 * time.Second},
	"idle":    {pods: 1000},
	"storm":   {pods: 2000, messages: 2000, perConn: 100},
	"pgbench": {clients: 16, duration: 15 * time.Second},
}

// options are podsbench's flags, with the scenario applied.
type options struct {
	name         string   // the scenario's
	load         scenario // with the overrides applied
	url          string
	pid          int
	http1        bool
	gzip         bool
	conns        int // HTTP connections the members share
	setupWorkers int
	senders      int
	drain        time.Duration
	timeout      time.Duration
	slowSends    time.Duration // print each send slower than this; 0: none
	changeSource string        // podsd's --change-source
	dbMaxConns   int           // podsd's --db-max-conns; 0: its default

	factor         float64       // max: from one step's rate to the next
	maxP99         time.Duration // max: the p99 a clean step stays within
	settle         time.Duration // idle: wait before measuring
	catchUpTimeout time.Duration // storm: how long clients may take
	summary        string        // a file of JSON lines to summarize instead
}

func main() {
	// podsbench's own garbage collection showed up in its figures: a mark
	// phase takes one of the machine's cores for ~100 ms, during which
	// deliveries wait to be read (mid: p99 9–11 ms at GOGC=100, 4.5–7.7 ms
	// at 400, the server unchanged). So it collects less often, within a
	// memory limit, unless GOGC or GOMEMLIMIT say otherwise. podsd is not
	// affected: it gets the environment, not these settings.
	if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetGCPercent(400)
		debug.SetMemoryLimit(4 << 30)
	}
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "podsbench:", err)
		os.Exit(1)
	}
}

// report is the figures of a scenario.
type report interface {
	// print writes the figures as a table.
	print(w io.Writer)
}

func run(args []string) error {
	opts, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if opts.summary != "" {
		return summarizeFile(os.Stdout, opts.summary)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if opts.name == "pgbench" {
		return finish(runPgbench(ctx, opts))
	}
	raiseFileLimit(2*opts.conns + 100)
	var srv *server
	if opts.url == "" {
		srv, err = startServer(ctx, opts)
		if err != nil {
			return err
		}
		defer srv.stop()
		opts.url, opts.pid = srv.url, srv.pid()
	} else {
		opts.changeSource = "" // unknown
	}
	switch opts.name {
	case "max":
		return finish(maxRate(ctx, opts))
	case "idle":
		return finish(idle(ctx, opts, srv))
	case "storm":
		return finish(storm(ctx, opts))
	}
	return finish(latency(ctx, opts))
}

// faulty is a report that can tell a broken guarantee: a delivery lost or
// duplicated, a client never served.
type faulty interface {
	fault() error
}

// finish prints a scenario's figures: a table on stderr, JSON on stdout.
// A broken guarantee makes it fail after printing them.
func finish[R report](r R, err error) error {
	if err != nil {
		return err
	}
	r.print(os.Stderr)
	if err := printJSON(os.Stdout, r); err != nil {
		return err
	}
	if f, ok := any(r).(faulty); ok {
		return f.fault()
	}
	return nil
}

// deliveryFault describes lost, duplicated or unexpected deliveries.
func deliveryFault(lost, dups, unexpected int) error {
	if lost+dups+unexpected == 0 {
		return nil
	}
	return fmt.Errorf("guarantee broken: %d lost, %d duplicated, %d unexpected deliveries", lost, dups, unexpected)
}

func parseFlags(args []string) (options, error) {
	var o options
	var pods, clients, messages int
	var rate float64
	var duration time.Duration
	var startServer bool
	fs := flag.NewFlagSet("podsbench", flag.ContinueOnError)
	fs.StringVar(&o.name, "scenario", "seed", "seed, mid, high, max, idle, storm or pgbench")
	fs.IntVar(&pods, "pods", 0, "pods of 5 members (default: the scenario's)")
	fs.IntVar(&clients, "clients", 0, "members, rounded up to pods of 5; pgbench: its connections (default: the scenario's)")
	fs.Float64Var(&rate, "rate", 0, "messages per second, in total; max: the first step's (default: the scenario's)")
	fs.DurationVar(&duration, "duration", 0, "how long to send; max: each step (default: the scenario's)")
	fs.IntVar(&messages, "messages", 0, "storm: messages sent while the clients are away (default: the scenario's)")
	fs.StringVar(&o.url, "url", "", "base URL of a running server; empty starts one")
	fs.BoolVar(&startServer, "start-server", false, "build and start ./cmd/podsd (the default without --url)")
	fs.IntVar(&o.pid, "pid", 0, "PID of the server given by --url, to report its CPU time and RSS")
	fs.StringVar(&o.changeSource, "change-source", "notify", "the started podsd's --change-source: notify or wal")
	fs.IntVar(&o.dbMaxConns, "db-max-conns", 0, "the started podsd's --db-max-conns (default: podsd's)")
	fs.BoolVar(&o.http1, "http1", false, "use HTTP/1.1 instead of cleartext HTTP/2")
	fs.BoolVar(&o.gzip, "gzip", true, "ask for gzipped responses (connect-go's default)")
	fs.IntVar(&o.conns, "conns", 0, "HTTP connections the members share round-robin (default: one each; storm: one per 100)")
	fs.IntVar(&o.setupWorkers, "setup-workers", 32, "pods set up, or streams opened, concurrently")
	fs.IntVar(&o.senders, "senders", 256, "sender goroutines")
	fs.DurationVar(&o.drain, "drain", 5*time.Second, "how long to wait for deliveries after the last send")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "timeout of each unary call and of waiting for ready")
	fs.DurationVar(&o.slowSends, "slow-sends", 0, "print each SendMessage slower than this to stderr, with the wall-clock time it started, to find what the server was doing then (0: none)")
	fs.Float64Var(&o.factor, "factor", 1.5, "max: the rate of each step over the previous one's")
	fs.DurationVar(&o.maxP99, "max-p99", 50*time.Millisecond, "max: the send→delivery p99 a clean step stays within")
	fs.DurationVar(&o.settle, "settle", 5*time.Second, "idle: how long to wait before each RSS sample")
	fs.DurationVar(&o.catchUpTimeout, "catch-up-timeout", 2*time.Minute, "storm: how long the clients may take to catch up")
	fs.StringVar(&o.summary, "summary", "", "print a table of the JSON lines in this file (podsbench's stdout), and nothing else")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if startServer && o.url != "" {
		return o, errors.New("--start-server and --url exclude each other")
	}
	if pods > 0 && clients > 0 {
		return o, errors.New("--pods and --clients exclude each other")
	}
	sc, ok := scenarios[o.name]
	if !ok {
		return o, fmt.Errorf("unknown scenario %q (seed, mid, high, max, idle, storm, pgbench)", o.name)
	}
	switch {
	case clients > 0 && o.name == "pgbench":
		sc.clients = clients
	case clients > 0:
		sc.pods = (clients + membersPerPod - 1) / membersPerPod
	case pods > 0:
		sc.pods = pods
	}
	if rate > 0 {
		sc.rate = rate
	}
	if duration > 0 {
		sc.duration = duration
	}
	if messages > 0 {
		sc.messages = messages
	}
	o.load = sc
	if o.conns == 0 {
		perConn := max(sc.perConn, 1)
		o.conns = max((sc.pods*membersPerPod+perConn-1)/perConn, 1)
	}
	if o.setupWorkers < 1 || o.senders < 1 || o.conns < 1 {
		return o, errors.New("--setup-workers, --senders and --conns must be positive")
	}
	if o.factor <= 1 {
		return o, errors.New("--factor must be above 1")
	}
	return o, nil
}

// raiseFileLimit raises the soft limit on open files to the hard limit,
// and warns if that is still below need. The server started by podsbench
// inherits it.
func raiseFileLimit(need int) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Fprintln(os.Stderr, "podsbench: reading the open file limit:", err)
		return
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Fprintln(os.Stderr, "podsbench: raising the open file limit:", err)
	}
	if lim.Cur < uint64(need) {
		fmt.Fprintf(os.Stderr, "podsbench: warning: open file limit %d is below the ≈%d needed\n", lim.Cur, need)
	}
}
