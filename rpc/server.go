// Package rpc serves Pods' Connect API: authentication, error mapping,
// input validation and one handler type per service. Handlers validate the
// request, call the db package and convert the result; they hold no state
// that a restart could lose.
package rpc

import (
	"context"
	"log/slog"
	"net/http"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pods-dev/pods/db"
	"github.com/pods-dev/pods/rpc/gen/pods/v1/podsv1connect"
	"github.com/pods-dev/pods/rpc/h2c"
	"github.com/pods-dev/pods/stream"
)

// Config is what the API server runs on.
type Config struct {
	Pool *db.Pool
	// Writers is the pool SendMessage writes through, opened with
	// db.OpenWriters(ctx, Pool, MessageWriters, Logger) and given to the hub too
	// (stream.Config.Writers).
	Writers *db.Writers
	Hub     *stream.Hub
	Logger  *slog.Logger
	// WriteRate and WriteBurst limit each user's writes (messages per
	// second, sustained and in a burst). Zero means the defaults, 10/s and 30.
	WriteRate  float64
	WriteBurst int
	// PasswordMemoryKiB is the memory argon2id uses per new password hash.
	// Zero means DefaultPasswordMemoryKiB; load tests that sign up
	// thousands of users lower it.
	PasswordMemoryKiB uint32
	// Metrics is where the server registers its metrics (one server per
	// registry). Nil means a private registry nobody reads.
	Metrics prometheus.Registerer
}

// Typing signals allowed per user and pod: clients send one when typing
// starts, repeat it every few seconds while it goes on, and one when it
// stops.
const (
	typingRate  = 2
	typingBurst = 5
	// Failed password checks per handle (log-in, or a sign-up repeated),
	// against guessing: 10 at once, then one every 6 s.
	passwordCheckRate  = 1.0 / 6
	passwordCheckBurst = 10
)

// SendMessage writes go through at most MessageWriters transactions at a
// time, each of at most maxMessageBatch messages: under load, concurrent
// sends share a commit.
const (
	MessageWriters  = 4
	maxMessageBatch = 256
)

// Server holds what every handler shares.
type Server struct {
	pool   *db.Pool
	hub    *stream.Hub
	logger *slog.Logger
	sends  *db.MessageBatcher
	auth   *authInterceptor
	writes *rateLimiter
	typing *rateLimiter // per user and pod
	// passwordChecks is per handle, or per device that logged in before
	// (per-address limits belong to the load balancer, which knows the
	// clients' addresses).
	passwordChecks *passwordThrottle
	devices        *deviceTokens
	calls          *metricsInterceptor

	passwordMemoryKiB uint32
}

// New returns a server for cfg.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.WriteRate == 0 {
		cfg.WriteRate = 10
	}
	if cfg.WriteBurst == 0 {
		cfg.WriteBurst = 30
	}
	if cfg.PasswordMemoryKiB == 0 {
		cfg.PasswordMemoryKiB = DefaultPasswordMemoryKiB
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	sessions := newSessionCache()
	cfg.Hub.WatchSessions(sessions)
	return &Server{
		pool: cfg.Pool, hub: cfg.Hub, logger: cfg.Logger,
		auth:              newAuthInterceptor(cfg.Pool, sessions, cfg.Metrics, cfg.Logger),
		sends:             cfg.Writers.NewMessageBatcher(maxMessageBatch, cfg.Hub.MessagesWritten),
		writes:            newRateLimiter(cfg.WriteRate, cfg.WriteBurst),
		typing:            newRateLimiter(typingRate, typingBurst),
		passwordChecks:    &passwordThrottle{pool: cfg.Pool, perSecond: passwordCheckRate, burst: passwordCheckBurst, logger: cfg.Logger},
		devices:           &deviceTokens{pool: cfg.Pool},
		calls:             newMetricsInterceptor(cfg.Metrics),
		passwordMemoryKiB: cfg.PasswordMemoryKiB,
	}
}

// compressMinBytes is the smallest message worth compressing.
const compressMinBytes = 2048

// maxRequestBytes bounds a request message, after decompression.
const maxRequestBytes = 64 << 10

// Handler returns every service, plus gRPC health checking and reflection
// (for grpcurl and buf curl), on one mux.
func (s *Server) Handler() http.Handler {
	opts := connect.WithHandlerOptions(
		connect.WithInterceptors(s.calls, s.auth),
		// Chat events are a few hundred bytes: gzip would cost more CPU
		// (a compressor reset per message) than it saves on the wire.
		connect.WithCompressMinBytes(compressMinBytes),
		// No request is near this (a message body is at most 16 KB); a
		// larger one is refused before it is read in full.
		connect.WithReadMaxBytes(maxRequestBytes),
	)
	mux := http.NewServeMux()
	mux.Handle(podsv1connect.NewAuthServiceHandler(authService{s}, opts))
	mux.Handle(podsv1connect.NewPodServiceHandler(podService{s}, opts))
	mux.Handle(podsv1connect.NewChatServiceHandler(chatService{Server: s}, opts))
	mux.Handle(podsv1connect.NewRealtimeServiceHandler(realtimeService{s}, opts))
	mux.Handle(podsv1connect.NewProgressServiceHandler(progressService{s}, opts))
	services := []string{
		podsv1connect.AuthServiceName, podsv1connect.PodServiceName, podsv1connect.ChatServiceName,
		podsv1connect.RealtimeServiceName, podsv1connect.ProgressServiceName,
	}
	mux.Handle(grpchealth.NewHandler(grpchealth.NewStaticChecker(services...)))
	reflector := grpcreflect.NewStaticReflector(services...)
	mux.Handle(grpcreflect.NewHandlerV1(reflector))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))
	return withResponseController(mux)
}

// Shutdown drains srv, which serves Handler: srv stops accepting
// connections and calls (its listeners close, HTTP/2 clients get GOAWAY),
// then open Subscribe streams end with unavailable, so that clients
// resubscribe elsewhere with their cursors, while calls in flight finish.
// If ctx ends first, Shutdown closes the connections still open and
// returns ctx's error. The hub keeps running: stop it afterwards.
func (s *Server) Shutdown(ctx context.Context, srv *h2c.Server) error {
	// Called once the listeners are closed, so no stream told to leave
	// can come back here.
	srv.RegisterOnShutdown(s.hub.Close)
	err := srv.Shutdown(ctx)
	if err != nil {
		srv.Close()
	}
	return err
}
