// Command podsd is the Pods server.
//
//	podsd [flags]                   serve the API (and the web client)
//	podsd migrate up|down|status   manage the database schema
//
// With no --database-url (or DATABASE_URL) podsd runs its own private
// PostgreSQL from the installed binaries, with its data in --data-dir, and
// migrates it up before serving.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pods-dev/pods/db"
	"github.com/pods-dev/pods/moderator"
	"github.com/pods-dev/pods/rpc"
	"github.com/pods-dev/pods/rpc/h2c"
	"github.com/pods-dev/pods/stream"
	"github.com/pods-dev/pods/web"
)

// defaultGCPercent is podsd's GOGC unless the environment sets one. Go
// lets the heap grow by GOGC percent of the live heap plus every
// goroutine's stack before it collects; most of podsd's stacks are idle
// streams', which make no garbage, so the default 100 doubles the memory of
// open streams for nothing. 50 gives a fifth less memory at the same CPU
// (podsbench mid: 223 -> 183 MiB, 10.4 -> 10.0 s).
const defaultGCPercent = 50

type config struct {
	addr           string
	databaseURL    string
	dbMaxConns     int
	pprof          bool
	dataDir        string
	logLevel       slog.Level
	passwordMemory uint
	writeRate      float64
	writeBurst     int
	nodeID         string
	presenceGrace  time.Duration
	coachQuiet     time.Duration
	changeSource   string
	llm            moderator.LLMConfig
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "podsd:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	var cfg config
	fs := flag.NewFlagSet("podsd", flag.ContinueOnError)
	fs.StringVar(&cfg.addr, "addr", envOr("PODS_ADDR", ":8080"), "address to listen on (HTTP/1.1 and h2c) [PODS_ADDR]")
	fs.StringVar(&cfg.databaseURL, "database-url", os.Getenv("DATABASE_URL"), "PostgreSQL connection string; empty runs a private server [DATABASE_URL]")
	fs.IntVar(&cfg.dbMaxConns, "db-max-conns", 32, "most connections this node opens to the database for requests, besides its listener, its 4 message writers (and replication connection with --change-source wal)")
	fs.StringVar(&cfg.dataDir, "data-dir", envOr("PODS_DATA_DIR", ".pods"), "where the private PostgreSQL keeps its data [PODS_DATA_DIR]")
	fs.TextVar(&cfg.logLevel, "log-level", slog.LevelInfo, "debug, info, warn or error")
	fs.UintVar(&cfg.passwordMemory, "password-memory-kib", rpc.DefaultPasswordMemoryKiB, "argon2id memory per new password hash (lower only for load tests)")
	fs.StringVar(&cfg.nodeID, "node-id", envOr("PODS_NODE_ID", ""), "this node's name among several on one database; default random [PODS_NODE_ID]")
	fs.DurationVar(&cfg.presenceGrace, "presence-grace", 3*time.Second, "how long a member stays online after their last stream closed")
	fs.StringVar(&cfg.changeSource, "change-source", envOr("PODS_CHANGE_SOURCE", stream.SourceNotify), "how nodes learn of new events: notify (trigger + NOTIFY) or wal (logical replication; needs wal_level=logical); every node of a database must use the same [PODS_CHANGE_SOURCE]")
	fs.DurationVar(&cfg.coachQuiet, "coach-quiet-after", 2*time.Hour, "silence after which the coach nudges a pod")
	fs.StringVar(&cfg.llm.BaseURL, "llm-base-url", envOr("PODS_LLM_BASE_URL", "https://openrouter.ai/api/v1"), "OpenAI-compatible API of the coach's model, ending in /v1 [PODS_LLM_BASE_URL]")
	fs.StringVar(&cfg.llm.Model, "llm-model", envOr("PODS_LLM_MODEL", "meta-llama/llama-3.1-8b-instruct"), "the coach's model [PODS_LLM_MODEL]")
	fs.StringVar(&cfg.llm.APIKey, "llm-api-key", envOr("PODS_LLM_API_KEY", os.Getenv("OPENROUTER_API_KEY")), "API key of the model; empty: the coach answers offline from templates [PODS_LLM_API_KEY, OPENROUTER_API_KEY]")
	fs.Float64Var(&cfg.writeRate, "write-rate", 10, "writes per second allowed per user, sustained")
	fs.BoolVar(&cfg.pprof, "pprof", false, "serve Go profiles at /debug/pprof/ (for profiling; do not expose)")
	fs.IntVar(&cfg.writeBurst, "write-burst", 30, "writes allowed per user in a burst")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: podsd [flags]\n       podsd [flags] migrate up|down|status\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.logLevel}))
	slog.SetDefault(logger)
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop) // the first signal drains; a second one kills

	databaseURL, stopPostgres, err := database(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer stopPostgres()

	switch rest := fs.Args(); {
	case len(rest) == 0:
		if err := db.Migrate(ctx, databaseURL, "up"); err != nil {
			return err
		}
		return serve(ctx, cfg, databaseURL, logger)
	case len(rest) == 2 && rest[0] == "migrate":
		return db.Migrate(ctx, databaseURL, rest[1])
	default:
		fs.Usage()
		return fmt.Errorf("unknown command %q", rest)
	}
}

// database returns the connection string to use, starting the private
// PostgreSQL when none is configured.
func database(ctx context.Context, cfg config, logger *slog.Logger) (string, func(), error) {
	if cfg.databaseURL != "" {
		return cfg.databaseURL, func() {}, nil
	}
	dataDir, err := filepath.Abs(cfg.dataDir)
	if err != nil {
		return "", nil, err
	}
	cluster, err := db.NewCluster(db.ClusterConfig{DataDir: filepath.Join(dataDir, "postgres"), Logger: logger})
	if err != nil {
		return "", nil, err
	}
	if err := cluster.Start(ctx); err != nil {
		return "", nil, err
	}
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cluster.Stop(ctx); err != nil {
			logger.Error("stopping postgres", "err", err)
		}
	}
	if err := cluster.CreateDatabase(ctx, "pods"); err != nil {
		stop()
		return "", nil, err
	}
	return cluster.ConnString("pods"), stop, nil
}

func serve(ctx context.Context, cfg config, databaseURL string, logger *slog.Logger) error {
	pool, err := db.Open(ctx, databaseURL, int32(cfg.dbMaxConns))
	if err != nil {
		return err
	}
	defer pool.Close()
	writers, err := db.OpenWriters(ctx, pool, rpc.MessageWriters, logger)
	if err != nil {
		return err
	}
	defer writers.Close()

	metrics := newMetrics()
	hub := stream.NewHub(stream.Config{
		Pool: pool, Writers: writers, Logger: logger, NodeID: cfg.nodeID, PresenceGrace: cfg.presenceGrace,
		ChangeSource: cfg.changeSource, Metrics: metrics,
	})
	if err := hub.Prepare(ctx); err != nil {
		return err
	}
	coach, err := newCoach(cfg, pool, logger, metrics)
	if err != nil {
		return err
	}
	// The hub and the coach outlive ctx until the HTTP server has drained.
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	var workers sync.WaitGroup
	defer func() { stopWork(); workers.Wait() }()
	workers.Go(func() { hub.Run(workCtx) })
	workers.Go(func() { coach.Run(workCtx) })

	api := rpc.New(rpc.Config{
		Pool: pool, Writers: writers, Hub: hub, Logger: logger,
		WriteRate: cfg.writeRate, WriteBurst: cfg.writeBurst, PasswordMemoryKiB: uint32(cfg.passwordMemory),
		Metrics: metrics,
	})
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(metrics, promhttp.HandlerOpts{}))
	if cfg.pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("/", web.WithAPI(api.Handler())) // the web client at /, the API at /pods.v1.*
	// h2c connections are served by h2c, HTTP/1.1 ones by net/http.
	srv := h2c.NewServer(&http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		// A connection with no request for this long is closed (with
		// GOAWAY on HTTP/2), so that connections of clients that vanished
		// without a word do not pile up.
		IdleTimeout: 2 * time.Minute,
		// No read or write timeout: they would cut long-lived streams.
	}, logger)
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	logger.Info("podsd listening", "addr", ln.Addr().String())

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	// Stop accepting, send open streams elsewhere, finish the calls in
	// flight; then the deferred calls stop the hub and the coach and close
	// the pool.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return api.Shutdown(shutdownCtx, srv)
}

// newMetrics returns the registry /metrics serves, holding the Go runtime's
// and the process's metrics; the components add theirs. They include
// pods_cpu_wait_seconds, how long goroutines wait for a CPU, which is what
// grows first when a node runs short of CPU.
func newMetrics() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newCPUWaitCollector())
	return reg
}

// newCoach returns the coach, on the model if an API key is configured.
func newCoach(cfg config, pool *db.Pool, logger *slog.Logger, metrics prometheus.Registerer) (*moderator.Coach, error) {
	coachCfg := moderator.Config{Pool: pool, Logger: logger, QuietAfter: cfg.coachQuiet, Metrics: metrics}
	if cfg.llm.APIKey != "" {
		llm, err := moderator.NewLLM(cfg.llm)
		if err != nil {
			return nil, err
		}
		coachCfg.Model = llm
		logger.Info("coach: using model", "base_url", cfg.llm.BaseURL, "model", cfg.llm.Model)
	}
	return moderator.New(coachCfg), nil
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
