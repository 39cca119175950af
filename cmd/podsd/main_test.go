package main_test

// The helpers of the multi-node tests: podsd built once and started as real
// processes on one test database, and clients of the generated Connect API
// over h2c.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"

	"github.com/pods-dev/pods/db/dbtest"
	podsv1 "github.com/pods-dev/pods/rpc/gen/pods/v1"
	"github.com/pods-dev/pods/rpc/gen/pods/v1/podsv1connect"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// buildPodsd builds ./cmd/podsd into a folder of t's, with the race
// detector if this test binary has it, so that the nodes are checked for
// data races too. It fails t if the build fails.
func buildPodsd(t *testing.T) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build podsd with: %v", err)
	}
	root, err := filepath.Abs("../..") // go test runs in the package's folder
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "podsd")
	args := []string{"build", "-o", bin}
	if raceEnabled() {
		args = append(args, "-race")
	}
	build := exec.CommandContext(t.Context(), goCmd, append(args, "./cmd/podsd")...)
	build.Dir = root
	began := time.Now()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("built podsd (race detector: %v) in %v", raceEnabled(), time.Since(began).Round(time.Millisecond))
	return bin
}

// raceEnabled reports whether this binary was built with -race.
func raceEnabled() bool {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// deployment is a set of podsd nodes on one database.
type deployment struct {
	t      *testing.T
	bin    string
	dbURL  string
	source string // the change source: notify or wal
	// prefix makes the node ids unique on the Postgres server: with the wal
	// source a node's replication slot is named after it, and slots belong
	// to the server, not to one database.
	prefix string
}

func newDeployment(t *testing.T, bin string, source string) (*deployment, *dbtest.Database) {
	t.Helper()
	d := dbtest.New(t)
	return &deployment{t: t, bin: bin, dbURL: d.URL, source: source, prefix: fmt.Sprintf("n%d", nodeCount.Add(1))}, d
}

var nodeCount atomic.Int64

// node is a running podsd process.
type node struct {
	t      *testing.T
	name   string
	id     string // --node-id
	url    string
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has been waited for
	err    error         // Wait's result, once exited is closed
	log    *syncBuffer   // stdout and stderr
	killed atomic.Bool   // we sent SIGKILL
}

// start starts a node named name and waits until it serves. The node is
// stopped with SIGTERM (and checked for a clean exit) when the test ends.
func (dep *deployment) start(name string) *node {
	dep.t.Helper()
	n, err := dep.tryStart(name)
	if err != nil {
		dep.t.Fatalf("node %s: %v", name, err)
	}
	return n
}

// tryStart is start for any goroutine: it returns the error. The node
// listens on a port of its own choosing, which its log names: a port found
// free beforehand may be taken by another process before the node binds
// it, and a health check would then reach that process.
func (dep *deployment) tryStart(name string) (*node, error) {
	n := &node{t: dep.t, name: name, id: dep.prefix + "-" + name, exited: make(chan struct{}), log: &syncBuffer{}}
	n.cmd = exec.Command(dep.bin,
		"--addr", "127.0.0.1:0",
		"--database-url", dep.dbURL,
		"--node-id", n.id,
		"--change-source", dep.source,
		"--presence-grace", presenceGrace.String(),
		"--password-memory-kib", "64",
		"--write-rate", "1000", "--write-burst", "1000",
		"--llm-api-key=", // the coach answers offline
		"--db-max-conns", "16",
	)
	n.cmd.Env = nodeEnv()
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	// A node must not outlive a test binary that dies.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := n.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		n.err = n.cmd.Wait()
		close(n.exited)
	}()
	dep.t.Cleanup(n.stop)
	return n, n.waitServing(60 * time.Second)
}

// listeningAt finds the address in podsd's "podsd listening" log line.
var listeningAt = regexp.MustCompile(`msg="podsd listening" addr=(\S+)`)

// presenceGrace is every node's --presence-grace.
const presenceGrace = time.Second

// nodeEnv is the test's environment without the variables podsd reads, so
// that only the flags configure the nodes.
func nodeEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "PODS_") || name == "DATABASE_URL" || name == "OPENROUTER_API_KEY" {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// waitServing waits for the node's log to name the address it listens on,
// then polls its gRPC health check until it answers SERVING.
func (n *node) waitServing(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for n.url == "" {
		if m := listeningAt.FindStringSubmatch(n.log.String()); m != nil {
			n.url = "http://" + m[1]
			continue
		}
		select {
		case <-n.exited:
			return fmt.Errorf("podsd exited: %v\n%s", n.err, n.log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("podsd not listening after %v", timeout)
		}
	}
	transport := &http.Transport{Protocols: h2cOnly()}
	defer transport.CloseIdleConnections()
	health := grpchealth.NewClient(&http.Client{Transport: transport}, n.url)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		res, err := health.Check(ctx, &grpchealth.CheckRequest{})
		cancel()
		if err == nil && res.Status == grpchealth.StatusServing {
			return nil
		}
		select {
		case <-n.exited:
			return fmt.Errorf("podsd exited: %v", n.err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("podsd not serving after %v: %v", timeout, err)
		}
	}
}

// kill ends the node with SIGKILL, as a crash or the OOM killer would, and
// returns when the process is gone.
func (n *node) kill() {
	n.t.Helper()
	n.killed.Store(true)
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		n.t.Fatalf("killing node %s: %v", n.name, err)
	}
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		n.t.Fatalf("node %s still running 10s after SIGKILL", n.name)
	}
}

// stop ends the node with SIGTERM (SIGKILL after 30 s) unless it is gone
// already, and fails the test if the node crashed, exited with an error or
// reported a data race. On failure it logs the node's output.
func (n *node) stop() {
	t := n.t
	select {
	case <-n.exited:
	default:
		n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.exited:
		case <-time.After(30 * time.Second):
			t.Errorf("node %s did not stop within 30s of SIGTERM", n.name)
			n.killed.Store(true)
			n.cmd.Process.Kill()
			<-n.exited
		}
	}
	if n.err != nil && !n.killed.Load() {
		t.Errorf("node %s exited with %v", n.name, n.err)
	}
	out := n.log.String()
	if strings.Contains(out, "WARNING: DATA RACE") {
		t.Errorf("node %s reported a data race", n.name)
	}
	if strings.Contains(out, "panic:") {
		t.Errorf("node %s panicked", n.name)
	}
	if t.Failed() {
		t.Logf("output of node %s (%s):\n%s", n.name, n.id, tail(out, 40000))
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// h2cOnly makes a client transport speak cleartext HTTP/2 (with HTTP/1.1
// enabled too, it would use HTTP/1.1 for http:// URLs).
func h2cOnly() *http.Protocols {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return p
}

// user is a signed-up user, who may call any node.
type user struct {
	t      *testing.T
	name   string
	id     string
	token  string
	mu     sync.Mutex
	byNode map[*node]*api
}

// api is a user's clients of one node, on a connection of their own.
type api struct {
	Auth podsv1connect.AuthServiceClient
	Pod  podsv1connect.PodServiceClient
	Chat podsv1connect.ChatServiceClient
	Live podsv1connect.RealtimeServiceClient
}

func newAPI(t *testing.T, baseURL, token string) *api {
	transport := &http.Transport{Protocols: h2cOnly()}
	t.Cleanup(transport.CloseIdleConnections)
	client := &http.Client{Transport: bearer{token: token, next: transport}}
	return &api{
		Auth: podsv1connect.NewAuthServiceClient(client, baseURL),
		Pod:  podsv1connect.NewPodServiceClient(client, baseURL),
		Chat: podsv1connect.NewChatServiceClient(client, baseURL),
		Live: podsv1connect.NewRealtimeServiceClient(client, baseURL),
	}
}

// bearer adds a token to every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	if b.token != "" {
		req = req.Clone(req.Context())
		req.Header.Set("Authorization", "Bearer "+b.token)
	}
	return b.next.RoundTrip(req)
}

var userCount atomic.Int64

// signUp creates a user through n.
func signUp(t *testing.T, n *node, name string) *user {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	res, err := newAPI(t, n.url, "").Auth.SignUp(ctx, connect.NewRequest(&podsv1.SignUpRequest{
		Handle: fmt.Sprintf("%s%d", name, userCount.Add(1)), Password: "correct horse battery",
		DisplayName: name, Timezone: "Europe/Berlin",
	}))
	if err != nil {
		t.Fatalf("sign up %s on node %s: %v", name, n.name, err)
	}
	return &user{t: t, name: name, id: res.Msg.User.Id, token: res.Msg.Token, byNode: make(map[*node]*api)}
}

// on returns u's clients of node n.
func (u *user) on(n *node) *api {
	u.mu.Lock()
	defer u.mu.Unlock()
	a := u.byNode[n]
	if a == nil {
		a = newAPI(u.t, n.url, u.token)
		u.byNode[n] = a
	}
	return a
}

// callCtx bounds a unary call of a test.
func callCtx(t *testing.T) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), 20*time.Second)
}

func createPod(t *testing.T, owner *user, n *node) *podsv1.Pod {
	t.Helper()
	ctx, cancel := callCtx(t)
	defer cancel()
	res, err := owner.on(n).Pod.CreatePod(ctx, connect.NewRequest(&podsv1.CreatePodRequest{
		Name: "Night owls", Habit: "write 500 words", Capacity: 6,
	}))
	if err != nil {
		t.Fatalf("create pod on node %s: %v", n.name, err)
	}
	return res.Msg.Pod
}

func join(t *testing.T, u *user, n *node, pod *podsv1.Pod) {
	t.Helper()
	ctx, cancel := callCtx(t)
	defer cancel()
	if _, err := u.on(n).Pod.JoinPod(ctx, connect.NewRequest(&podsv1.JoinPodRequest{InviteCode: pod.InviteCode})); err != nil {
		t.Fatalf("%s joins on node %s: %v", u.name, n.name, err)
	}
}

func send(t *testing.T, u *user, n *node, podID, key, body string) *podsv1.Message {
	t.Helper()
	ctx, cancel := callCtx(t)
	defer cancel()
	res, err := u.on(n).Chat.SendMessage(ctx, connect.NewRequest(&podsv1.SendMessageRequest{
		PodId: podID, IdempotencyKey: key, Body: body,
	}))
	if err != nil {
		t.Fatalf("%s sends %q on node %s: %v", u.name, body, n.name, err)
	}
	return res.Msg.Message
}

// lastSeq returns the pod's last seq as ListPods on n reports it.
func lastSeq(t *testing.T, u *user, n *node, podID string) int64 {
	t.Helper()
	ctx, cancel := callCtx(t)
	defer cancel()
	res, err := u.on(n).Pod.ListPods(ctx, connect.NewRequest(&podsv1.ListPodsRequest{}))
	if err != nil {
		t.Fatalf("list pods on node %s: %v", n.name, err)
	}
	for _, p := range res.Msg.Pods {
		if p.Pod.GetId() == podID {
			return p.LastSeq
		}
	}
	t.Fatalf("pod %s not listed for %s on node %s", podID, u.name, n.name)
	return 0
}

// watch is an open Subscribe stream whose events a goroutine records.
type watch struct {
	t      *testing.T
	name   string
	cancel context.CancelFunc
	done   chan struct{} // closed when the stream has ended

	mu     sync.Mutex
	events []received
	err    error // how the stream ended
}

type received struct {
	ev *podsv1.Event
	at time.Time
}

// subscribe opens a stream of u on n; it is closed when the test ends.
func subscribe(t *testing.T, u *user, n *node, cursors map[string]int64) *watch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := u.on(n).Live.Subscribe(ctx, connect.NewRequest(&podsv1.SubscribeRequest{Cursors: cursors}))
	if err != nil {
		cancel()
		t.Fatalf("%s subscribes on node %s: %v", u.name, n.name, err)
	}
	w := &watch{t: t, name: u.name + "@" + n.name, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for s.Receive() {
			w.mu.Lock()
			w.events = append(w.events, received{s.Msg().Event, time.Now()})
			w.mu.Unlock()
		}
		w.mu.Lock()
		w.err = s.Err()
		w.mu.Unlock()
		s.Close()
	}()
	t.Cleanup(w.close)
	return w
}

// close ends the stream and waits for its reader.
func (w *watch) close() {
	w.cancel()
	<-w.done
}

// len returns how many events have arrived: a mark for waitFrom.
func (w *watch) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.events)
}

// waitFrom returns the first event from index from on that matches, with its
// arrival time, waiting up to timeout. It fails the test if none arrives.
func (w *watch) waitFrom(from int, timeout time.Duration, what string, match func(*podsv1.Event) bool) (*podsv1.Event, time.Time) {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		w.mu.Lock()
		for i := from; i < len(w.events); i++ {
			if match(w.events[i].ev) {
				r := w.events[i]
				w.mu.Unlock()
				return r.ev, r.at
			}
		}
		from = len(w.events)
		err := w.err
		w.mu.Unlock()
		select {
		case <-w.done:
			w.t.Fatalf("%s: stream ended (%v) before %s", w.name, err, what)
		default:
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("%s: no %s within %v", w.name, what, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ready returns the stream's first event, which must be ready.
func (w *watch) ready() *podsv1.Ready {
	w.t.Helper()
	ev, _ := w.waitFrom(0, 30*time.Second, "first event", func(*podsv1.Event) bool { return true })
	if ev.GetReady() == nil {
		w.t.Fatalf("%s: first event is %v, want ready", w.name, ev)
	}
	return ev.GetReady()
}

// find returns the events that match.
func (w *watch) find(match func(*podsv1.Event) bool) []received {
	w.mu.Lock()
	defer w.mu.Unlock()
	var found []received
	for _, r := range w.events {
		if match(r.ev) {
			found = append(found, r)
		}
	}
	return found
}

// logged returns the events of pod's log (seq > 0) received so far.
func (w *watch) logged(podID string) []*podsv1.Event {
	var evs []*podsv1.Event
	for _, r := range w.find(func(ev *podsv1.Event) bool { return ev.PodId == podID && ev.Seq > 0 }) {
		evs = append(evs, r.ev)
	}
	return evs
}

// waitSeq waits until the stream has delivered pod's log up to seq.
func (w *watch) waitSeq(podID string, seq int64, timeout time.Duration) {
	w.t.Helper()
	w.waitFrom(0, timeout, fmt.Sprintf("event %d of pod %s", seq, podID), func(ev *podsv1.Event) bool {
		return ev.PodId == podID && ev.Seq >= seq
	})
}

// checkLog fails the test unless the stream delivered pod's events after
// after to at least last, each once and in order (the coach may have added
// some since), and returns them.
func (w *watch) checkLog(podID string, after, last int64) []*podsv1.Event {
	w.t.Helper()
	evs := w.logged(podID)
	seqs := make([]int64, len(evs))
	ok := int64(len(evs)) >= last-after
	for i, ev := range evs {
		seqs[i] = ev.Seq
		ok = ok && ev.Seq == after+int64(i+1)
	}
	if !ok {
		w.t.Fatalf("%s: pod %s delivered seqs %v, want %d..%d (or more) each once in order", w.name, podID, seqs, after+1, last)
	}
	return evs
}

// isPresence matches a presence event of userID going online or offline.
func isPresence(userID string, online bool) func(*podsv1.Event) bool {
	return func(ev *podsv1.Event) bool {
		p := ev.GetPresence()
		return p != nil && p.UserId == userID && p.Online == online
	}
}

// onlineIn returns the sorted online members of pod in ready.
func onlineIn(t *testing.T, r *podsv1.Ready, podID string) []string {
	t.Helper()
	for _, p := range r.Pods {
		if p.Pod.GetId() == podID {
			return slices.Sorted(slices.Values(p.OnlineUserIds))
		}
	}
	t.Fatalf("pod %s missing from ready", podID)
	return nil
}

// codeOf returns err's Connect code (0 for nil, unknown for other errors).
func codeOf(err error) connect.Code {
	if err == nil {
		return 0
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Code()
	}
	return connect.CodeUnknown
}
