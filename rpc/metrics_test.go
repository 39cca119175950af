package rpc_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/pods-dev/pods/db"
	"github.com/pods-dev/pods/db/dbtest"
	"github.com/pods-dev/pods/rpc"
	podsv1 "github.com/pods-dev/pods/rpc/gen/pods/v1"
	"github.com/pods-dev/pods/stream"
)

// metrics scrapes /metrics and returns its samples by name and labels as
// exposed, e.g. `pods_rpc_handled_total{code="ok",procedure="/pods.v1.PodService/ListPods"}`.
func (e *env) metrics() map[string]float64 {
	e.t.Helper()
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	res, err := (&http.Client{Transport: transport}).Get(e.url + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		e.t.Fatalf("scraping /metrics: %s, %v", res.Status, err)
	}
	samples := make(map[string]float64)
	for line := range strings.Lines(string(body)) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			e.t.Fatalf("scraping /metrics: bad sample %q", line)
		}
		samples[line[:i]] = v
	}
	return samples
}

func TestMetricsCountStreamsEventsAndCalls(t *testing.T) {
	t.Parallel()
	for _, source := range sources {
		t.Run(source, func(t *testing.T) {
			t.Parallel()
			testMetricsCountStreamsEventsAndCalls(t, source)
		})
	}
}

func testMetricsCountStreamsEventsAndCalls(t *testing.T, source string) {
	e := newEnvOn(t, dbtest.New(t), rpc.Config{}, stream.Config{ChangeSource: source})
	owner, member := e.signUp(), e.signUp()
	pod := e.createPod(owner, 4)
	e.join(member, pod)
	if m := e.metrics(); m["pods_stream_open_streams"] != 0 {
		t.Fatalf("%v open streams before any", m["pods_stream_open_streams"])
	}

	s := e.subscribe(member, nil)
	s.ready()
	for _, body := range []string{"one", "two", "three"} {
		e.send(owner, pod.Id, body, body)
		if got := s.nextLogged().GetMessageCreated().GetMessage().GetBody(); got != body {
			t.Fatalf("got %q, want %q", got, body)
		}
	}
	// A message from another node comes through the change source, the
	// path the latency histogram measures (this node's own are fanned out
	// at their commit).
	if _, err := db.MessageSend(context.Background(), e.db.Pool, db.MessageSendParams{PodID: pod.Id, AuthorID: owner.user.Id, IdempotencyKey: "elsewhere", Body: "four"}); err != nil {
		t.Fatal(err)
	}
	if got := s.nextLogged().GetMessageCreated().GetMessage().GetBody(); got != "four" {
		t.Fatalf("got %q, want four", got)
	}
	if _, err := owner.Chat.SetTyping(context.Background(), connect.NewRequest(&podsv1.SetTypingRequest{PodId: pod.Id, Typing: true})); err != nil {
		t.Fatal(err)
	}
	if ev := s.next(); ev.GetTyping() == nil {
		t.Fatalf("got %v, want typing", ev)
	}
	// Failing calls, one refused by the auth interceptor.
	_, err := owner.Chat.SendMessage(context.Background(), connect.NewRequest(&podsv1.SendMessageRequest{PodId: pod.Id, IdempotencyKey: "blank", Body: " "}))
	wantCode(t, err, connect.CodeInvalidArgument)
	_, err = e.anonymous().Pod.ListPods(context.Background(), connect.NewRequest(&podsv1.ListPodsRequest{}))
	wantCode(t, err, connect.CodeUnauthenticated)
	wantCode(t, e.subscribeErr(member, map[string]int64{pod.Id: -1}), connect.CodeInvalidArgument)

	m := e.metrics()
	for name, want := range map[string]float64{
		`pods_stream_open_streams`:                                                                       1,
		`pods_stream_events_fanned_out_total{kind="logged"}`:                                             4,
		`pods_stream_events_fanned_out_total{kind="ephemeral"}`:                                          1,
		`pods_stream_slow_consumers_total`:                                                               0,
		`pods_rpc_handled_total{code="ok",procedure="/pods.v1.AuthService/SignUp"}`:                      2,
		`pods_rpc_handled_total{code="ok",procedure="/pods.v1.ChatService/SendMessage"}`:                 3,
		`pods_rpc_handled_total{code="invalid_argument",procedure="/pods.v1.ChatService/SendMessage"}`:   1,
		`pods_rpc_handled_total{code="unauthenticated",procedure="/pods.v1.PodService/ListPods"}`:        1,
		`pods_rpc_handled_total{code="invalid_argument",procedure="/pods.v1.RealtimeService/Subscribe"}`: 1,
	} {
		if got, ok := m[name]; !ok || got != want {
			t.Errorf("%s = %v (exposed: %v), want %v", name, got, ok, want)
		}
	}
	// The message from the other node at least; this node's own only if
	// the change source beat the commit's fan-out to them.
	if n := m["pods_stream_fanout_latency_seconds_count"]; n < 1 || n > 4 {
		t.Errorf("fan-out latency count %v, want 1 to 4", n)
	}
	if sum := m["pods_stream_fanout_latency_seconds_sum"]; sum <= 0 || sum > 30 {
		t.Errorf("fan-out latency sum %vs", sum)
	}
	// Unary calls are timed, failed ones too; streams are not.
	if n := m[`pods_rpc_duration_seconds_count{procedure="/pods.v1.ChatService/SendMessage"}`]; n != 4 {
		t.Errorf("%v SendMessage calls timed, want 4", n)
	}
	if sum := m[`pods_rpc_duration_seconds_sum{procedure="/pods.v1.ChatService/SendMessage"}`]; sum <= 0 || sum > 30 {
		t.Errorf("SendMessage duration sum %vs", sum)
	}
	if _, ok := m[`pods_rpc_duration_seconds_count{procedure="/pods.v1.RealtimeService/Subscribe"}`]; ok {
		t.Error("streams are timed")
	}
	if usage, ok := m["pods_stream_notification_queue_usage"]; !ok || usage < 0 || usage >= 1 {
		t.Errorf("notification queue usage %v (exposed: %v)", usage, ok)
	}
	if lag, ok := m["pods_stream_wal_lag_bytes"]; ok != (source == stream.SourceWAL) || lag < 0 {
		t.Errorf("WAL lag %v (exposed: %v) with the %s source", lag, ok, source)
	}
}
