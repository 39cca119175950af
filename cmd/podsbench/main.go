// Command podsbench is a load generator for a running Pods server: it
// measures how long a chat message takes from SendMessage to every member's
// Subscribe stream.
//
//	go run ./cmd/podsbench --scenario seed          # builds and starts its own podsd
//	go run ./cmd/podsbench --scenario mid --url http://127.0.0.1:8080 --pid 1234
//
// It creates P pods of 5 members. Every member is one user (signed up as
// bench<run>u<n>), with its own HTTP connection (h2c, or HTTP/1.1 with
// --http1) and one RealtimeService/Subscribe stream. Then, for D seconds,
// it posts R messages per second in total, each from a random member of a
// random pod, through a pool of sender goroutines paced by a scheduler, so
// a slow send does not delay the next ones.
//
// Every stream, the sender's own included, records when each messageCreated
// event arrives. At the end podsbench reports the send→delivery latency
// (p50, p95, p99, max, from the moment just before SendMessage started),
// deliveries per second, expected and actual deliveries, lost deliveries
// (a member never got a message within --drain after the last send),
// duplicates (a message twice on one stream), send errors and stream
// reconnects. A stream that ends early resubscribes with its cursor, as a
// real client would.
//
// Scenarios (--pods, --rate and --duration override them):
//
//	seed    40 pods,   40 msg/s, 20 s
//	mid   1000 pods,  500 msg/s, 20 s
//	high  2000 pods, 2000 msg/s, 20 s
//
// Without --url, podsbench builds ./cmd/podsd (run it from the module root),
// starts it on a free port with a private Postgres in a temporary folder,
// cheap password hashing and a high per-user write limit, and stops it and
// removes the folder at the end. It then reports the server's CPU time over
// the measured phase and its peak RSS (podsd alone; Postgres runs in its own
// processes, whose CPU time is reported separately). With --url, pass --pid
// to get the same figures for a server you started.
//
// Progress goes to stderr every second, then a table; the last line, on
// stdout, is one JSON object with the same figures.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// membersPerPod is how many members every pod gets.
const membersPerPod = 5

// scenario is one named load.
type scenario struct {
	pods     int
	rate     float64 // messages per second, in total
	duration time.Duration
}

var scenarios = map[string]scenario{
	"seed": {pods: 40, rate: 40, duration: 20 * time.Second},
	"mid":  {pods: 1000, rate: 500, duration: 20 * time.Second},
	"high": {pods: 2000, rate: 2000, duration: 20 * time.Second},
}

// options are podsbench's flags, with the scenario applied.
type options struct {
	name         string   // the scenario's
	load         scenario // with the overrides applied
	url          string
	pid          int
	http1        bool
	gzip         bool
	setupWorkers int
	senders      int
	drain        time.Duration
	timeout      time.Duration
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "podsbench:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	opts, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	raiseFileLimit(2*opts.load.pods*membersPerPod + 100)

	if opts.url == "" {
		srv, err := startServer(ctx)
		if err != nil {
			return err
		}
		defer srv.stop()
		opts.url, opts.pid = srv.url, srv.pid()
	}
	res, err := benchmark(ctx, opts)
	if err != nil {
		return err
	}
	res.print(os.Stderr)
	return res.printJSON(os.Stdout)
}

func parseFlags(args []string) (options, error) {
	var o options
	var pods int
	var rate float64
	var duration time.Duration
	var startServer bool
	fs := flag.NewFlagSet("podsbench", flag.ContinueOnError)
	fs.StringVar(&o.name, "scenario", "seed", "seed, mid or high")
	fs.IntVar(&pods, "pods", 0, "pods of 5 members (default: the scenario's)")
	fs.Float64Var(&rate, "rate", 0, "messages per second, in total (default: the scenario's)")
	fs.DurationVar(&duration, "duration", 0, "how long to send (default: the scenario's)")
	fs.StringVar(&o.url, "url", "", "base URL of a running server; empty starts one")
	fs.BoolVar(&startServer, "start-server", false, "build and start ./cmd/podsd (the default without --url)")
	fs.IntVar(&o.pid, "pid", 0, "PID of the server given by --url, to report its CPU time and RSS")
	fs.BoolVar(&o.http1, "http1", false, "use HTTP/1.1 instead of cleartext HTTP/2")
	fs.BoolVar(&o.gzip, "gzip", true, "ask for gzipped responses (connect-go's default)")
	fs.IntVar(&o.setupWorkers, "setup-workers", 32, "pods set up concurrently")
	fs.IntVar(&o.senders, "senders", 256, "sender goroutines")
	fs.DurationVar(&o.drain, "drain", 5*time.Second, "how long to wait for deliveries after the last send")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "timeout of each unary call")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if startServer && o.url != "" {
		return o, errors.New("--start-server and --url exclude each other")
	}
	sc, ok := scenarios[o.name]
	if !ok {
		return o, fmt.Errorf("unknown scenario %q (seed, mid, high)", o.name)
	}
	if pods > 0 {
		sc.pods = pods
	}
	if rate > 0 {
		sc.rate = rate
	}
	if duration > 0 {
		sc.duration = duration
	}
	o.load = sc
	if o.setupWorkers < 1 || o.senders < 1 {
		return o, errors.New("--setup-workers and --senders must be positive")
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
