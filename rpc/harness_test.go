package rpc_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pods-dev/pods/db"
	"github.com/pods-dev/pods/db/dbtest"
	"github.com/pods-dev/pods/rpc"
	podsv1 "github.com/pods-dev/pods/rpc/gen/pods/v1"
	"github.com/pods-dev/pods/rpc/gen/pods/v1/podsv1connect"
	"github.com/pods-dev/pods/rpc/h2c"
	"github.com/pods-dev/pods/stream"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// env is a real server over h2c on its own database, with its metrics at
// /metrics as podsd serves them.
type env struct {
	t   *testing.T
	db  *dbtest.Database
	url string
	api *rpc.Server
	hub *stream.Hub
	srv *h2c.Server
}

func newEnv(t *testing.T, cfg rpc.Config) *env {
	return newEnvOn(t, dbtest.New(t), cfg, stream.Config{})
}

// newEnvOn serves d with a running hub configured by hubCfg.
func newEnvOn(t *testing.T, d *dbtest.Database, cfg rpc.Config, hubCfg stream.Config) *env {
	t.Helper()
	cfg.Pool = d.Pool
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	writers, err := db.OpenWriters(context.Background(), d.Pool, rpc.MessageWriters, cfg.Logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(writers.Close)
	cfg.Writers = writers
	if cfg.WriteRate == 0 {
		cfg.WriteRate, cfg.WriteBurst = 1000, 1000
	}
	metrics := prometheus.NewRegistry()
	cfg.Metrics, hubCfg.Metrics = metrics, metrics
	hubCfg.Pool, hubCfg.Writers, hubCfg.Logger = d.Pool, writers, cfg.Logger
	cfg.Hub = stream.NewHub(hubCfg)
	api := rpc.New(cfg)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(metrics, promhttp.HandlerOpts{}))
	mux.Handle("/", api.Handler())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := h2c.NewServer(&http.Server{Handler: mux}, cfg.Logger)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	if err := cfg.Hub.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cfg.Hub.Run(ctx); close(done) }()
	t.Cleanup(func() { cfg.Hub.Close(); cancel(); <-done })
	return &env{t: t, db: d, url: "http://" + ln.Addr().String(), api: api, hub: cfg.Hub, srv: srv}
}

// h2cOnly makes a client transport use cleartext HTTP/2 (with HTTP/1.1
// enabled too, it would use HTTP/1.1 for http:// URLs).
func h2cOnly() *http.Protocols {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return p
}

// client is one user's set of service clients on its own connection.
type client struct {
	token string
	user  *podsv1.User
	Auth  podsv1connect.AuthServiceClient
	Pod   podsv1connect.PodServiceClient
	Chat  podsv1connect.ChatServiceClient
	Live  podsv1connect.RealtimeServiceClient
}

// bearer adds a token to every request.
type bearer struct {
	token *string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	if *b.token != "" {
		req = req.Clone(req.Context())
		req.Header.Set("Authorization", "Bearer "+*b.token)
	}
	return b.next.RoundTrip(req)
}

// anonymous returns a client with no token on a connection of its own.
func (e *env) anonymous() *client {
	return e.anonymousOver(h2cOnly())
}

// anonymousOver returns a client with no token on a connection of its own
// that speaks protocols, with connect-go's options (Connect by default).
func (e *env) anonymousOver(protocols *http.Protocols, opts ...connect.ClientOption) *client {
	c := &client{}
	transport := &http.Transport{Protocols: protocols}
	e.t.Cleanup(transport.CloseIdleConnections)
	httpClient := &http.Client{Transport: bearer{token: &c.token, next: transport}}
	c.Auth = podsv1connect.NewAuthServiceClient(httpClient, e.url, opts...)
	c.Pod = podsv1connect.NewPodServiceClient(httpClient, e.url, opts...)
	c.Chat = podsv1connect.NewChatServiceClient(httpClient, e.url, opts...)
	c.Live = podsv1connect.NewRealtimeServiceClient(httpClient, e.url, opts...)
	return c
}

var userCount atomic.Int64

// signUp returns a client of a new user.
func (e *env) signUp() *client {
	e.t.Helper()
	c := e.anonymous()
	res, err := c.Auth.SignUp(context.Background(), connect.NewRequest(&podsv1.SignUpRequest{
		Handle: fmt.Sprintf("user%d", userCount.Add(1)), Password: "correct horse", DisplayName: "Test User",
		Timezone: "Europe/Berlin",
	}))
	if err != nil {
		e.t.Fatalf("sign up: %v", err)
	}
	c.token, c.user = res.Msg.Token, res.Msg.User
	return c
}

// as returns a client on a new connection with c's token.
func (e *env) as(c *client) *client {
	n := e.anonymous()
	n.token, n.user = c.token, c.user
	return n
}

func (e *env) createPod(owner *client, capacity int32) *podsv1.Pod {
	e.t.Helper()
	res, err := owner.Pod.CreatePod(context.Background(), connect.NewRequest(&podsv1.CreatePodRequest{
		Name: "Early birds", Habit: "up at six", Capacity: capacity,
	}))
	if err != nil {
		e.t.Fatalf("create pod: %v", err)
	}
	return res.Msg.Pod
}

func (e *env) join(c *client, pod *podsv1.Pod) {
	e.t.Helper()
	if _, err := c.Pod.JoinPod(context.Background(), connect.NewRequest(&podsv1.JoinPodRequest{InviteCode: pod.InviteCode})); err != nil {
		e.t.Fatalf("join: %v", err)
	}
}

func (e *env) leave(c *client, podID string) {
	e.t.Helper()
	if _, err := c.Pod.LeavePod(context.Background(), connect.NewRequest(&podsv1.LeavePodRequest{PodId: podID})); err != nil {
		e.t.Fatalf("leave: %v", err)
	}
}

func (e *env) send(c *client, podID, key, body string) *podsv1.Message {
	e.t.Helper()
	res, err := c.Chat.SendMessage(context.Background(), connect.NewRequest(&podsv1.SendMessageRequest{
		PodId: podID, IdempotencyKey: key, Body: body,
	}))
	if err != nil {
		e.t.Fatalf("send %q: %v", body, err)
	}
	return res.Msg.Message
}

// count runs a count(*) query.
func (e *env) count(query string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.db.Pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// exec runs a statement on the test's database.
func (e *env) exec(query string, args ...any) {
	e.t.Helper()
	if _, err := e.db.Pool.Exec(context.Background(), query, args...); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
}

// wantCode fails t unless err carries code.
func wantCode(t *testing.T, err error, code connect.Code) {
	t.Helper()
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != code {
		t.Fatalf("got error %v, want code %v", err, code)
	}
}

// eventually fails t unless cond becomes true within 5 s.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
