package h2c_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/pods-dev/pods/rpc/h2c"
)

// TestMain fails the package if a test leaves a goroutine running: a
// handler, a connection or a Serve loop that outlived its server's Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hang bounds every wait, so that a broken server fails a test instead of
// hanging it. No test measures time against it.
const hang = 10 * time.Second

// testServer is an h2c.Server serving on 127.0.0.1 until its test ends.
type testServer struct {
	*h2c.Server
	addr     string       // host:port
	url      string       // http://host:port
	accepted atomic.Int32 // TCP connections accepted
	served   chan error   // what Serve returned
}

// startServer serves hs with an h2c.Server logging to logger (nil: nowhere).
func startServer(t testing.TB, hs *http.Server, logger *slog.Logger) *testServer {
	t.Helper()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: h2c.NewServer(hs, logger), addr: ln.Addr().String(), served: make(chan error, 1)}
	ts.url = "http://" + ts.addr
	go func() { ts.served <- ts.Serve(countingListener{ln, &ts.accepted}) }()
	t.Cleanup(func() { ts.Close() })
	return ts
}

// serve serves h with default settings.
func serve(t *testing.T, h http.HandlerFunc) *testServer {
	return startServer(t, &http.Server{Handler: h}, nil)
}

type countingListener struct {
	net.Listener
	n *atomic.Int32
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// h2cClient returns a client speaking HTTP/2 with prior knowledge to
// http:// URLs.
func h2cClient(t testing.TB) *http.Client {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: p}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: hang}
}

// wait receives from c, failing the test if nothing comes.
func wait[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(hang):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// eventually polls cond until it holds, failing the test if it does not.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(hang); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// readAll returns a function that takes a client call's results and
// returns the response with its whole body, failing the test on an error.
func readAll(t *testing.T) func(*http.Response, error) (*http.Response, []byte) {
	return func(resp *http.Response, err error) (*http.Response, []byte) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
}

// dial connects to addr, for at most hang.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(hang))
	return nc
}

// rawConn is an HTTP/2 client connection driven frame by frame.
type rawConn struct {
	t    *testing.T
	nc   net.Conn
	fr   *http2.Framer
	hbuf bytes.Buffer
	henc *hpack.Encoder
}

// dialRaw connects to addr and writes the client preface, and nothing else.
func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc := dial(t, addr)
	if _, err := io.WriteString(nc, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	rc := &rawConn{t: t, nc: nc, fr: http2.NewFramer(nc, nc)}
	rc.fr.AllowIllegalWrites = true
	rc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	rc.henc = hpack.NewEncoder(&rc.hbuf)
	rc.henc.SetMaxDynamicTableSizeLimit(0) // as the server's SETTINGS ask
	return rc
}

// check fails the test on a write error.
func (rc *rawConn) check(err error) {
	rc.t.Helper()
	if err != nil {
		rc.t.Fatal(err)
	}
}

// get opens stream id with a GET of path.
func (rc *rawConn) get(id uint32, path string) {
	rc.t.Helper()
	rc.request(id, http.MethodGet, path, true)
}

// request opens stream id with a request whose body follows unless
// endStream.
func (rc *rawConn) request(id uint32, method, path string, endStream bool) {
	rc.t.Helper()
	rc.hbuf.Reset()
	for _, f := range []hpack.HeaderField{
		{Name: ":method", Value: method}, {Name: ":scheme", Value: "http"},
		{Name: ":authority", Value: "test"}, {Name: ":path", Value: path},
	} {
		rc.henc.WriteField(f)
	}
	rc.check(rc.fr.WriteHeaders(http2.HeadersFrameParam{
		StreamID: id, BlockFragment: rc.hbuf.Bytes(), EndStream: endStream, EndHeaders: true,
	}))
}

// next reads frames until one matches and returns it (valid until the next
// read); it fails the test if the connection ends first.
func (rc *rawConn) next(what string, match func(http2.Frame) bool) http2.Frame {
	rc.t.Helper()
	for {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			rc.t.Fatalf("connection ended before %s: %v", what, err)
		}
		if match(f) {
			return f
		}
	}
}

// onStream matches the frames of stream id.
func onStream(id uint32) func(http2.Frame) bool {
	return func(f http2.Frame) bool { return f.Header().StreamID == id }
}

// goAway reads frames until a GOAWAY.
func (rc *rawConn) goAway() *http2.GoAwayFrame {
	rc.t.Helper()
	return rc.next("GOAWAY", func(f http2.Frame) bool {
		_, ok := f.(*http2.GoAwayFrame)
		return ok
	}).(*http2.GoAwayFrame)
}

// expectClosed reads until the server closes the connection.
func (rc *rawConn) expectClosed() {
	rc.t.Helper()
	for {
		_, err := rc.fr.ReadFrame()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			rc.t.Fatal("the server did not close the connection")
		}
		if err != nil {
			return
		}
	}
}

// lockedBuffer is a bytes.Buffer a logger and a test may share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestUnaryRoundTrip proves a request reaches the handler as HTTP/2 with
// its method, host, path, remote address and body, and that the handler's
// status, header and body come back.
func TestUnaryRoundTrip(t *testing.T) {
	reqs := make(chan *http.Request, 1)
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		reqs <- r
		w.Header().Set("X-Echo", "yes")
		w.WriteHeader(http.StatusCreated)
		w.Write(body)
	})

	var clientAddr string
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		clientAddr = info.Conn.LocalAddr().String()
	}}
	ctx := httptrace.WithClientTrace(context.Background(), trace)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.url+"/echo?a=1", strings.NewReader("hello, h2c"))
	resp, body := readAll(t)(h2cClient(t).Do(req))
	if resp.StatusCode != http.StatusCreated || resp.ProtoMajor != 2 {
		t.Errorf("got %s %s, want HTTP/2.0 201", resp.Proto, resp.Status)
	}
	if got := resp.Header.Get("X-Echo"); got != "yes" {
		t.Errorf("X-Echo = %q, want yes", got)
	}
	if string(body) != "hello, h2c" {
		t.Errorf("body = %q, want the request's", body)
	}

	r := <-reqs
	for _, c := range []struct{ field, got, want string }{
		{"Proto", r.Proto, "HTTP/2.0"},
		{"Method", r.Method, http.MethodPost},
		{"Host", r.Host, ts.addr},
		{"URL.Path", r.URL.Path, "/echo"},
		{"URL.RawQuery", r.URL.RawQuery, "a=1"},
		{"RemoteAddr", r.RemoteAddr, clientAddr},
	} {
		if c.got != c.want {
			t.Errorf("request %s = %q, want %q", c.field, c.got, c.want)
		}
	}
	if r.ProtoMajor != 2 {
		t.Errorf("request ProtoMajor = %d, want 2", r.ProtoMajor)
	}
}

// TestTrailers proves trailers reach the client whether declared in a
// Trailer header before WriteHeader or set with http.TrailerPrefix after
// the body, also when the response has no body at all (gRPC's
// trailers-only errors, as connect-go writes them), and that they are not
// sent as headers.
func TestTrailers(t *testing.T) {
	for _, c := range []struct {
		name    string
		handler http.HandlerFunc
		body    string
		trailer http.Header
	}{{
		name: "declared",
		handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "Grpc-Status")
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, "body")
			w.Header().Set("Grpc-Status", "0")
		},
		body:    "body",
		trailer: http.Header{"Grpc-Status": {"0"}},
	}, {
		name: "prefixed",
		handler: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "body")
			w.Header().Set(http.TrailerPrefix+"X-Late", "late")
		},
		body:    "body",
		trailer: http.Header{"X-Late": {"late"}},
	}, {
		name: "declared and prefixed",
		handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "Grpc-Status")
			io.WriteString(w, "body")
			w.(http.Flusher).Flush()
			w.Header().Set("Grpc-Status", "0")
			w.Header().Set(http.TrailerPrefix+"X-Late", "late")
		},
		body:    "body",
		trailer: http.Header{"Grpc-Status": {"0"}, "X-Late": {"late"}},
	}, {
		name: "trailers only, declared",
		handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
			w.WriteHeader(http.StatusOK)
			w.Header().Set("Grpc-Status", "13")
			w.Header().Set("Grpc-Message", "boom")
		},
		trailer: http.Header{"Grpc-Status": {"13"}, "Grpc-Message": {"boom"}},
	}, {
		name: "trailers only, prefixed and flushed", // connect-go's gRPC error
		handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Add(http.TrailerPrefix+"Grpc-Status", "13")
			w.Header().Add(http.TrailerPrefix+"Grpc-Message", "boom")
			w.(http.Flusher).Flush()
		},
		trailer: http.Header{"Grpc-Status": {"13"}, "Grpc-Message": {"boom"}},
	}} {
		t.Run(c.name, func(t *testing.T) {
			ts := serve(t, c.handler)
			resp, body := readAll(t)(h2cClient(t).Get(ts.url))
			if string(body) != c.body {
				t.Errorf("body = %q, want %q", body, c.body)
			}
			if !maps.EqualFunc(resp.Trailer, c.trailer, slices.Equal) {
				t.Errorf("trailer = %v, want %v", resp.Trailer, c.trailer)
			}
			for key := range c.trailer {
				if v, ok := resp.Header[key]; ok {
					t.Errorf("trailer %s sent as a header too: %q", key, v)
				}
			}
		})
	}
}

// TestFlushStreams proves Flush sends what the handler wrote while the
// handler still runs: the handler waits for the client to have read its
// first chunk before it writes the second.
func TestFlushStreams(t *testing.T) {
	release := make(chan struct{})
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first;")
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("Flush: %v", err)
			return
		}
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "second")
	})
	resp, err := h2cClient(t).Get(ts.url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, len("first;"))
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatalf("reading the flushed chunk: %v", err)
	}
	close(release)
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(first) + string(rest); got != "first;second" {
		t.Errorf("body = %q, want first;second", got)
	}
}

// TestLargeBodies proves flow control in both directions: a 5 MiB request
// body, far more than the server's 64 KiB stream window (so its
// WINDOW_UPDATEs must work), reaches the handler whole, and a 5 MiB
// response, more than the client's window, reaches the client whole.
func TestLargeBodies(t *testing.T) {
	payload := make([]byte, 5<<20)
	rand.NewChaCha8([32]byte{}).Read(payload)
	sum := sha256.Sum256(payload)
	want := hex.EncodeToString(sum[:])

	ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/upload":
			h := sha256.New()
			if _, err := io.Copy(h, r.Body); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			io.WriteString(w, hex.EncodeToString(h.Sum(nil)))
		case "/download":
			w.Write(payload)
		}
	})
	client := h2cClient(t)

	t.Run("request", func(t *testing.T) {
		_, got := readAll(t)(client.Post(ts.url+"/upload", "application/octet-stream", bytes.NewReader(payload)))
		if string(got) != want {
			t.Errorf("handler read a body with sha256 %q, want %s", got, want)
		}
	})
	t.Run("response", func(t *testing.T) {
		resp, err := client.Get(ts.url + "/download")
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			t.Errorf("got %d bytes with sha256 %s, want %d with %s", n, got, len(payload), want)
		}
	})
}

// TestHTTP1Fallback proves one listener serves h2c and, with the same
// handler, HTTP/1.1 and a hand-written HTTP/1.0 request shorter than the
// HTTP/2 preface (so the sniffing does not wait for 24 bytes).
func TestHTTP1Fallback(t *testing.T) {
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	})
	http1 := &http.Transport{}
	t.Cleanup(http1.CloseIdleConnections)
	for _, c := range []struct {
		name   string
		client *http.Client
		want   string
	}{
		{"h2c", h2cClient(t), "HTTP/2.0"},
		{"HTTP/1.1", &http.Client{Transport: http1, Timeout: hang}, "HTTP/1.1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, body := readAll(t)(c.client.Get(ts.url))
			if resp.Proto != c.want || string(body) != c.want {
				t.Errorf("client got %s, handler saw %s; want %s", resp.Proto, body, c.want)
			}
		})
	}
	t.Run("short HTTP/1.0", func(t *testing.T) {
		nc := dial(t, ts.addr)
		if _, err := io.WriteString(nc, "GET / HTTP/1.0\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
		if err != nil {
			t.Fatalf("no response: %v", err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || resp.Proto != "HTTP/1.0" || string(body) != "HTTP/1.0" {
			t.Errorf("got %s %s, handler saw %s; want HTTP/1.0 200 from an HTTP/1.0 handler", resp.Proto, resp.Status, body)
		}
	})
}

// TestClientCancel proves that a client canceling a request (RST_STREAM
// CANCEL) cancels the handler's context, and fails a body read the handler
// is blocked in.
func TestClientCancel(t *testing.T) {
	t.Run("context canceled", func(t *testing.T) {
		ctxErr := make(chan error, 1)
		ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "first")
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(hang):
			}
			ctxErr <- r.Context().Err()
		})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.url, nil)
		resp, err := h2cClient(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if _, err := io.ReadFull(resp.Body, make([]byte, len("first"))); err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := wait(t, ctxErr, "the handler"); err == nil {
			t.Error("the handler's context is not done after the client canceled")
		}
	})

	t.Run("RST_STREAM during a body read", func(t *testing.T) {
		type outcome struct{ readErr, ctxErr error }
		reading, done := make(chan struct{}), make(chan outcome, 1)
		ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
			if _, err := io.ReadFull(r.Body, make([]byte, len("hello"))); err != nil {
				t.Errorf("reading the first message: %v", err)
			}
			close(reading)
			_, err := r.Body.Read(make([]byte, 10))
			done <- outcome{err, r.Context().Err()}
		})
		rc := dialRaw(t, ts.addr)
		rc.check(rc.fr.WriteSettings())
		rc.request(1, http.MethodPost, "/", false)
		rc.check(rc.fr.WriteData(1, false, []byte("hello")))
		wait(t, reading, "the handler to read the first message")
		rc.check(rc.fr.WriteRSTStream(1, http2.ErrCodeCancel))
		got := wait(t, done, "the handler's body read")
		if got.readErr == nil {
			t.Error("the handler's body read succeeded after RST_STREAM")
		}
		if got.ctxErr == nil {
			t.Error("the handler's context is not done after RST_STREAM")
		}
	})
}

// TestConcurrentStreams proves 100 requests in flight at once on one
// connection each get their own response (run it with -race).
func TestConcurrentStreams(t *testing.T) {
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Id", r.Header.Get("X-Id"))
		io.Copy(w, r.Body)
	})
	client := h2cClient(t)
	roundTrip := func(i int) error {
		want := strings.Repeat(fmt.Sprintf("request %d;", i), 1+i*100) // up to 100 KiB
		req, _ := http.NewRequest(http.MethodPost, ts.url, strings.NewReader(want))
		req.Header.Set("X-Id", fmt.Sprint(i))
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case err != nil:
			return err
		case resp.Header.Get("X-Id") != fmt.Sprint(i):
			return fmt.Errorf("request %d got X-Id %q", i, resp.Header.Get("X-Id"))
		case string(body) != want:
			return fmt.Errorf("request %d got %d bytes that are not its own", i, len(body))
		}
		return nil
	}
	if err := roundTrip(0); err != nil { // the connection, and its settings
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	errs := make([]error, 100)
	for i := range errs {
		wg.Go(func() { errs[i] = roundTrip(i) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Error(err)
	}
	if n := ts.accepted.Load(); n != 1 {
		t.Errorf("the client opened %d connections, want 1", n)
	}
}

// TestHandlerPanic proves a panicking handler fails its own request only:
// the connection goes on serving others, a panic is logged, and
// http.ErrAbortHandler, the way to abort a response on purpose, is not.
func TestHandlerPanic(t *testing.T) {
	for _, c := range []struct {
		name   string
		panic  func(w http.ResponseWriter)
		logged bool
	}{
		{"before writing", func(w http.ResponseWriter) { panic("boom") }, true},
		{"after flushing", func(w http.ResponseWriter) {
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			panic("boom")
		}, true},
		{"ErrAbortHandler", func(w http.ResponseWriter) { panic(http.ErrAbortHandler) }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var log lockedBuffer
			ts := startServer(t, &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/panic" {
					c.panic(w)
				}
				io.WriteString(w, "ok")
			})}, slog.New(slog.NewTextHandler(&log, nil)))
			client := h2cClient(t)

			resp, err := client.Get(ts.url + "/panic")
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if err == nil {
				t.Error("the request whose handler panicked succeeded")
			}
			if logged := strings.Contains(log.String(), "panic"); logged != c.logged {
				t.Errorf("panic logged: %v, want %v; log: %s", logged, c.logged, log.String())
			}

			resp, err = client.Get(ts.url + "/ok")
			if err != nil {
				t.Fatalf("the next request failed: %v", err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(body) != "ok" {
				t.Errorf("the next request got %q, %v; want ok", body, err)
			}
			if n := ts.accepted.Load(); n != 1 {
				t.Errorf("the client needed %d connections, want 1", n)
			}
		})
	}
}

// TestShutdown proves Shutdown runs the RegisterOnShutdown functions,
// stops accepting connections, lets a request in flight finish, and
// returns nil once it has, and that Serve then returns
// http.ErrServerClosed.
func TestShutdown(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "done")
	})
	onShutdown := make(chan struct{})
	ts.RegisterOnShutdown(func() { close(onShutdown) })

	type result struct {
		body string
		err  error
	}
	results := make(chan result, 1)
	client := h2cClient(t)
	go func() {
		resp, err := client.Get(ts.url)
		if err != nil {
			results <- result{err: err}
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		results <- result{string(body), err}
	}()
	wait(t, entered, "the request to reach its handler")

	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), hang)
		defer cancel()
		shutdown <- ts.Shutdown(ctx)
	}()
	wait(t, onShutdown, "the RegisterOnShutdown function")
	if nc, err := net.Dial("tcp", ts.addr); err == nil {
		nc.Close()
		t.Error("a new connection was accepted after Shutdown")
	}
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned %v with a request in its handler", err)
	default:
	}

	close(release)
	if r := wait(t, results, "the request in flight"); r.err != nil || r.body != "done" {
		t.Errorf("the request in flight got %q, %v; want done", r.body, r.err)
	}
	if err := wait(t, shutdown, "Shutdown"); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := wait(t, ts.served, "Serve"); err != http.ErrServerClosed {
		t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
	}
}

// TestServerSettings proves the server's first frame is a SETTINGS that
// turns off the client's HPACK dynamic table and limits a connection to
// 250 concurrent streams.
func TestServerSettings(t *testing.T) {
	ts := serve(t, func(http.ResponseWriter, *http.Request) {})
	rc := dialRaw(t, ts.addr)
	f, err := rc.fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		t.Fatalf("first frame is %v, want SETTINGS", f)
	}
	for _, want := range []http2.Setting{
		{ID: http2.SettingHeaderTableSize, Val: 0},
		{ID: http2.SettingMaxConcurrentStreams, Val: 250},
	} {
		if v, ok := sf.Value(want.ID); !ok || v != want.Val {
			t.Errorf("%v = %d (sent: %v), want %d", want.ID, v, ok, want.Val)
		}
	}
}

// TestPing proves a PING is acknowledged with its data.
func TestPing(t *testing.T) {
	ts := serve(t, func(http.ResponseWriter, *http.Request) {})
	rc := dialRaw(t, ts.addr)
	rc.check(rc.fr.WriteSettings())
	data := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	rc.check(rc.fr.WritePing(false, data))
	f := rc.next("PING ack", func(f http2.Frame) bool {
		p, ok := f.(*http2.PingFrame)
		return ok && p.IsAck()
	})
	if got := f.(*http2.PingFrame).Data; got != data {
		t.Errorf("PING ack carries %v, want %v", got, data)
	}
}

// TestConnectionErrors proves the client's protocol errors end the
// connection with a GOAWAY carrying PROTOCOL_ERROR.
func TestConnectionErrors(t *testing.T) {
	settings := func(rc *rawConn) { rc.check(rc.fr.WriteSettings()) }
	for _, c := range []struct {
		name  string
		write func(rc *rawConn)
	}{
		{"first frame PING", func(rc *rawConn) { rc.check(rc.fr.WritePing(false, [8]byte{})) }},
		{"first frame SETTINGS ack", func(rc *rawConn) { rc.check(rc.fr.WriteSettingsAck()) }},
		{"DATA on stream 0", func(rc *rawConn) {
			settings(rc)
			rc.check(rc.fr.WriteData(0, false, []byte("x")))
		}},
		{"DATA on an idle stream", func(rc *rawConn) {
			settings(rc)
			rc.check(rc.fr.WriteData(5, false, []byte("x")))
		}},
		{"DATA on an idle stream above an open one", func(rc *rawConn) {
			settings(rc)
			rc.get(1, "/")
			rc.check(rc.fr.WriteData(3, true, []byte("x")))
		}},
		{"HEADERS on an even stream", func(rc *rawConn) {
			settings(rc)
			rc.get(2, "/")
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ts := serve(t, func(http.ResponseWriter, *http.Request) {})
			rc := dialRaw(t, ts.addr)
			c.write(rc)
			if code := rc.goAway().ErrCode; code != http2.ErrCodeProtocol {
				t.Errorf("GOAWAY with %v, want PROTOCOL_ERROR", code)
			}
			rc.expectClosed()
		})
	}
}

// TestResponseFrames proves a response is a HEADERS frame with the status
// and without END_STREAM, then its body in DATA ending the stream.
func TestResponseFrames(t *testing.T) {
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	})
	rc := dialRaw(t, ts.addr)
	rc.check(rc.fr.WriteSettings())
	rc.get(1, "/")

	h, ok := rc.next("the response", onStream(1)).(*http2.MetaHeadersFrame)
	if !ok {
		t.Fatal("the response does not start with HEADERS")
	}
	if status := h.PseudoValue("status"); status != "200" || h.StreamEnded() {
		t.Errorf("HEADERS has :status %q, END_STREAM %v; want 200 without END_STREAM", status, h.StreamEnded())
	}
	d, ok := rc.next("the body", onStream(1)).(*http2.DataFrame)
	if !ok {
		t.Fatal("HEADERS is not followed by DATA")
	}
	if string(d.Data()) != "hello" || !d.StreamEnded() {
		t.Errorf("DATA is %q, END_STREAM %v; want hello with END_STREAM", d.Data(), d.StreamEnded())
	}
}

// TestMaxConcurrentStreams proves a stream beyond the 250 whose handlers
// still run is refused with REFUSED_STREAM, and the others are served.
func TestMaxConcurrentStreams(t *testing.T) {
	release := make(chan struct{})
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) { <-release })
	rc := dialRaw(t, ts.addr)
	rc.check(rc.fr.WriteSettings())
	const extra = 2*250 + 1 // the 251st stream
	for id := uint32(1); id <= extra; id += 2 {
		rc.get(id, "/")
	}
	f := rc.next("RST_STREAM", func(f http2.Frame) bool {
		_, ok := f.(*http2.RSTStreamFrame)
		return ok
	}).(*http2.RSTStreamFrame)
	if f.StreamID != extra || f.ErrCode != http2.ErrCodeRefusedStream {
		t.Errorf("RST_STREAM %v on stream %d, want REFUSED_STREAM on %d", f.ErrCode, f.StreamID, extra)
	}

	close(release)
	ended := 0
	rc.next("the 250 responses", func(f http2.Frame) bool {
		if h := f.Header(); h.StreamID != 0 && h.Flags.Has(http2.FlagHeadersEndStream) { // END_STREAM, in HEADERS or DATA
			ended++
		}
		return ended == 250
	})
}

// TestWriteDeadline proves a write deadline set with
// http.ResponseController ends a stream whose client stopped reading: the
// handler's blocked Flush fails and the client gets RST_STREAM. The client
// announces a 10-byte stream window, which the server must not exceed.
func TestWriteDeadline(t *testing.T) {
	flushErr := make(chan error, 1)
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if err := rc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
			flushErr <- fmt.Errorf("SetWriteDeadline: %w", err)
			return
		}
		chunk := make([]byte, 1024)
		for range 1000 {
			w.Write(chunk)
			if err := rc.Flush(); err != nil {
				flushErr <- err
				return
			}
		}
		flushErr <- nil
	})
	rc := dialRaw(t, ts.addr)
	rc.check(rc.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 10}))
	rc.get(1, "/")

	received := 0
	f := rc.next("RST_STREAM", func(f http2.Frame) bool {
		if d, ok := f.(*http2.DataFrame); ok && d.StreamID == 1 {
			received += len(d.Data())
		}
		_, ok := f.(*http2.RSTStreamFrame)
		return ok && f.Header().StreamID == 1
	}).(*http2.RSTStreamFrame)
	if f.ErrCode == http2.ErrCodeNo {
		t.Errorf("RST_STREAM with NO_ERROR, want an error code")
	}
	if received > 10 {
		t.Errorf("the server sent %d bytes into a 10-byte window", received)
	}
	if err := wait(t, flushErr, "the handler"); err == nil {
		t.Error("the handler's writes all succeeded past the deadline")
	}
}

// TestHandshakeTimeout proves a connection that does not send the preface
// and a SETTINGS frame within the http.Server's ReadHeaderTimeout is
// closed, and one that did stays open past it.
func TestHandshakeTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	ts := startServer(t, &http.Server{
		Handler:           http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}),
		ReadHeaderTimeout: timeout,
	}, nil)

	for _, c := range []struct {
		name  string
		write string
	}{
		{"nothing", ""},
		{"part of the preface", http2.ClientPreface[:10]},
		{"the preface, no SETTINGS", http2.ClientPreface},
	} {
		t.Run(c.name, func(t *testing.T) {
			nc := dial(t, ts.addr)
			if _, err := io.WriteString(nc, c.write); err != nil {
				t.Fatal(err)
			}
			_, err := io.Copy(io.Discard, nc) // the server's SETTINGS, if any, then EOF
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Error("the server did not close the connection")
			}
		})
	}
	t.Run("handshake done", func(t *testing.T) {
		rc := dialRaw(t, ts.addr)
		rc.check(rc.fr.WriteSettings())
		time.Sleep(3 * timeout)
		rc.check(rc.fr.WritePing(false, [8]byte{}))
		rc.next("PING ack", func(f http2.Frame) bool {
			p, ok := f.(*http2.PingFrame)
			return ok && p.IsAck()
		})
	})
}

// TestHeadResponseHasNoBody proves a HEAD request is answered with the
// handler's headers and no content, as net/http does, though the handler
// writes a body (RFC 9110 §9.3.2). It reads frames: Go's client returns a
// HEAD response before DATA arrives, so it would not notice.
func TestHeadResponseHasNoBody(t *testing.T) {
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Handler", "ran")
		io.WriteString(w, "body")
	})
	rc := dialRaw(t, ts.addr)
	rc.check(rc.fr.WriteSettings())
	rc.request(1, http.MethodHead, "/", true)

	h, ok := rc.next("the response", onStream(1)).(*http2.MetaHeadersFrame)
	if !ok {
		t.Fatal("the response does not start with HEADERS")
	}
	status := h.PseudoValue("status")
	ran := slices.Contains(h.RegularFields(), hpack.HeaderField{Name: "x-handler", Value: "ran"})
	if status != "200" || !ran {
		t.Errorf("HEADERS has :status %q, x-handler: ran %v; want 200 and the header", status, ran)
	}
	content := 0
	var f http2.Frame = h
	for !f.Header().Flags.Has(http2.FlagHeadersEndStream) { // END_STREAM, in HEADERS or DATA
		f = rc.next("the end of the stream", onStream(1))
		if d, ok := f.(*http2.DataFrame); ok {
			content += len(d.Data())
		}
	}
	if content != 0 {
		t.Errorf("the HEAD response has %d bytes of content, want none", content)
	}
}

// readerConn reads a connection through the reader that buffered it.
type readerConn struct {
	net.Conn
	r io.Reader
}

func (c readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// TestCloseClosesEveryConnection proves Close closes at once every
// connection the server accepted, whatever the stage it is at; the
// handshake timeout here is long enough not to do it instead.
func TestCloseClosesEveryConnection(t *testing.T) {
	for _, c := range []struct {
		name string
		open func(t *testing.T, addr string) net.Conn
	}{
		{"h2c, idle", func(t *testing.T, addr string) net.Conn {
			rc := dialRaw(t, addr)
			rc.check(rc.fr.WriteSettings())
			rc.next("SETTINGS", func(f http2.Frame) bool { _, ok := f.(*http2.SettingsFrame); return ok })
			return rc.nc
		}},
		{"HTTP/1.1, idle", func(t *testing.T, addr string) net.Conn {
			nc := dial(t, addr)
			io.WriteString(nc, "GET / HTTP/1.1\r\nHost: test\r\n\r\n")
			br := bufio.NewReader(nc)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			return readerConn{nc, br}
		}},
		{"no preface yet", dial},
	} {
		t.Run(c.name, func(t *testing.T) {
			ts := startServer(t, &http.Server{
				Handler:           http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}),
				ReadHeaderTimeout: time.Hour,
			}, nil)
			nc := c.open(t, ts.addr)
			// Close must not find it still in the listener's backlog.
			eventually(t, "the connection to be accepted", func() bool { return ts.accepted.Load() == 1 })
			ts.Close()
			if _, err := io.Copy(io.Discard, nc); errors.Is(err, os.ErrDeadlineExceeded) {
				t.Error("the connection is still open after Close")
			}
		})
	}
}

// TestTrailersAfterTheResponseAreIgnored: a client may still send its
// request's trailers after the server ended the stream (answered without
// reading the body, RST_STREAM NO_ERROR); they must not end the connection
// and its other streams.
func TestTrailersAfterTheResponseAreIgnored(t *testing.T) {
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "early") })
	rc := dialRaw(t, ts.addr)
	rc.check(rc.fr.WriteSettings())
	rc.request(1, http.MethodPost, "/", false)
	rc.next("the server's RST_STREAM", func(f http2.Frame) bool {
		_, ok := f.(*http2.RSTStreamFrame)
		return ok && f.Header().StreamID == 1
	})
	rc.hbuf.Reset()
	rc.henc.WriteField(hpack.HeaderField{Name: "x-checksum", Value: "1"})
	rc.check(rc.fr.WriteHeaders(http2.HeadersFrameParam{
		StreamID: 1, BlockFragment: rc.hbuf.Bytes(), EndStream: true, EndHeaders: true,
	}))
	rc.get(3, "/")
	f := rc.next("stream 3's response", func(f http2.Frame) bool {
		_, isGoAway := f.(*http2.GoAwayFrame)
		return isGoAway || f.Header().StreamID == 3
	})
	if g, ok := f.(*http2.GoAwayFrame); ok {
		t.Fatalf("the connection went away (%v) over trailers of a stream that ended", g.ErrCode)
	}
}

// TestResetStreamsDoNotCount: a stream the client reset no longer counts
// against MAX_CONCURRENT_STREAMS even while its handler still runs (the
// client counts it closed); the handlers still running are bounded, past
// four times the limit the connection goes away with ENHANCE_YOUR_CALM.
func TestResetStreamsDoNotCount(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			<-release // ignores the request's context, as a slow handler does
		}
	})
	rc := dialRaw(t, ts.addr)
	rc.check(rc.fr.WriteSettings())
	id := uint32(1)
	openAndReset := func(n int) {
		for range n {
			rc.get(id, "/block")
			rc.check(rc.fr.WriteRSTStream(id, http2.ErrCodeCancel))
			id += 2
		}
	}

	openAndReset(250)
	rc.get(id, "/")
	f := rc.next("stream's answer", onStream(id))
	if rst, ok := f.(*http2.RSTStreamFrame); ok {
		t.Fatalf("a stream opened after 250 reset ones got RST_STREAM %v", rst.ErrCode)
	}
	id += 2

	openAndReset(1000 - 250)
	rc.get(id, "/")
	if g := rc.goAway(); g.ErrCode != http2.ErrCodeEnhanceYourCalm {
		t.Errorf("GOAWAY %v with 1,000 handlers running, want ENHANCE_YOUR_CALM", g.ErrCode)
	}
}

// TestPaddingGivesItsWindowBack: padding counts against flow control but
// is never read, so its window goes back at once; a client padding more
// than a stream's window in total still gets its body through.
func TestPaddingGivesItsWindowBack(t *testing.T) {
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) { io.Copy(w, r.Body) })
	rc := dialRaw(t, ts.addr)
	rc.check(rc.fr.WriteSettings())
	rc.request(1, http.MethodPost, "/", false)
	pad := make([]byte, 255)
	for range 300 { // 76,500 bytes of padding, over the 65,535 window
		rc.check(rc.fr.WriteDataPadded(1, false, nil, pad))
	}
	rc.check(rc.fr.WriteData(1, true, []byte("hello")))
	f := rc.next("the echo", func(f http2.Frame) bool {
		_, isData := f.(*http2.DataFrame)
		_, isReset := f.(*http2.RSTStreamFrame)
		return f.Header().StreamID == 1 && (isData || isReset)
	})
	if d, ok := f.(*http2.DataFrame); !ok || string(d.Data()) != "hello" {
		t.Fatalf("got %v, want DATA hello", f)
	}
}

// TestBodyReadEndsWithTheHandler: a goroutine of the handler's that is
// still reading the request body when the handler returns gets an error,
// instead of waiting for ever.
func TestBodyReadEndsWithTheHandler(t *testing.T) {
	readErr := make(chan error, 1)
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
		firstRead := make(chan struct{})
		go func() {
			buf := make([]byte, 64)
			_, err := r.Body.Read(buf)
			close(firstRead)
			for err == nil {
				_, err = r.Body.Read(buf) // waits: the body has not ended
			}
			readErr <- err
		}()
		<-firstRead
		time.Sleep(50 * time.Millisecond) // lets the reader wait; not measured
	})
	rc := dialRaw(t, ts.addr)
	rc.check(rc.fr.WriteSettings())
	rc.request(1, http.MethodPost, "/", false)
	rc.check(rc.fr.WriteData(1, false, []byte("a body that never ends")))
	if err := wait(t, readErr, "the body read to end"); err == io.EOF {
		t.Error("the read of an unfinished body ended with EOF")
	}
}

// TestIdleTimeout proves that a connection with no stream for the server's
// IdleTimeout is told to go away and closed, and that one with a stream
// open is not, however long the stream lasts.
func TestIdleTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	release := make(chan struct{})
	ts := startServer(t, &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/long" {
				<-release
			}
		}),
		IdleTimeout: timeout,
	}, nil)

	t.Run("never used", func(t *testing.T) {
		rc := dialRaw(t, ts.addr)
		rc.check(rc.fr.WriteSettings())
		if ga := rc.goAway(); ga.ErrCode != http2.ErrCodeNo || ga.LastStreamID != 0 {
			t.Errorf("GOAWAY %v, last stream %d; want NO_ERROR, 0", ga.ErrCode, ga.LastStreamID)
		}
		rc.expectClosed()
	})
	t.Run("idle after a request", func(t *testing.T) {
		rc := dialRaw(t, ts.addr)
		rc.check(rc.fr.WriteSettings())
		rc.get(1, "/")
		rc.next("the response", onStream(1))
		if ga := rc.goAway(); ga.LastStreamID != 1 {
			t.Errorf("GOAWAY names stream %d as the last, want 1", ga.LastStreamID)
		}
		rc.expectClosed()
	})
	t.Run("a long stream", func(t *testing.T) {
		rc := dialRaw(t, ts.addr)
		rc.check(rc.fr.WriteSettings())
		rc.get(1, "/long")
		time.Sleep(3 * timeout)
		rc.check(rc.fr.WritePing(false, [8]byte{1}))
		rc.next("PING ack", func(f http2.Frame) bool {
			if _, ok := f.(*http2.GoAwayFrame); ok {
				t.Fatal("GOAWAY with a stream open")
			}
			p, ok := f.(*http2.PingFrame)
			return ok && p.IsAck()
		})
		close(release)
		rc.next("the response", onStream(1))
		rc.goAway()
		rc.expectClosed()
	})
}

// TestIdleConnectionsHoldNoReader proves a connection with nothing to read
// waits in the server's poller, not in a goroutine of its own, and that it
// is read again when the client sends: a PING, a new request, the body of
// a request in progress, and the end of the connection.
func TestIdleConnectionsHoldNoReader(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("connections park in epoll on Linux only")
	}
	const conns = 50
	ended := make(chan struct{}, conns)
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		if r.URL.Path == "/echo" {
			io.Copy(w, r.Body)
			return
		}
		<-r.Context().Done() // the connection ended
		ended <- struct{}{}
	})
	rcs := make([]*rawConn, conns)
	for i := range rcs {
		rcs[i] = dialRaw(t, ts.addr)
		rcs[i].check(rcs[i].fr.WriteSettings())
		rcs[i].get(1, "/wait")
		rcs[i].next("the response's headers", onStream(1))
	}
	readerless := func() bool { return readers() == 0 }
	eventually(t, "the connections to park", readerless)

	for i, rc := range rcs {
		rc.check(rc.fr.WritePing(false, [8]byte{byte(i)}))
		rc.next("PING ack", func(f http2.Frame) bool {
			p, ok := f.(*http2.PingFrame)
			return ok && p.IsAck() && p.Data[0] == byte(i)
		})
		rc.request(3, http.MethodPost, "/echo", false)
		rc.next("the echo's headers", onStream(3))
	}
	eventually(t, "the connections to park again", readerless)
	for i, rc := range rcs {
		rc.check(rc.fr.WriteData(3, true, []byte{byte(i)}))
		f := rc.next("the echo", func(f http2.Frame) bool {
			d, ok := f.(*http2.DataFrame)
			return ok && d.StreamID == 3 && len(d.Data()) > 0
		})
		if got := f.(*http2.DataFrame).Data(); !bytes.Equal(got, []byte{byte(i)}) {
			t.Fatalf("connection %d: echo %v, want [%d]", i, got, i)
		}
	}
	eventually(t, "the connections to park once more", readerless)
	for _, rc := range rcs {
		rc.nc.Close()
	}
	for range conns {
		wait(t, ended, "a handler to see its connection end")
	}
}

// readers counts the goroutines reading frames from a connection.
func readers() int {
	buf := make([]byte, 1<<20)
	return strings.Count(string(buf[:runtime.Stack(buf, true)]), "h2c.(*conn).readFrames(")
}

// TestShutdownEndsParkedConnections proves a connection waiting in the
// poller ends when the server closes it: Shutdown, which waits for every
// connection to end, returns though the client never sends again.
func TestShutdownEndsParkedConnections(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("connections park in epoll on Linux only")
	}
	ts := serve(t, func(http.ResponseWriter, *http.Request) {})
	rc := dialRaw(t, ts.addr)
	rc.check(rc.fr.WriteSettings())
	rc.get(1, "/")
	rc.next("the response", onStream(1))
	eventually(t, "the connection to park", func() bool { return readers() == 0 })

	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	rc.goAway()
	rc.expectClosed()
}
