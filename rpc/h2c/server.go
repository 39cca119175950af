// Package h2c serves cleartext HTTP/2 with prior knowledge (RFC 9113 §3.3)
// at a small, fixed cost per connection, for servers holding many
// long-lived streams, and hands every other connection to a net/http
// server.
//
// Go's HTTP/2 server spends three goroutines on a connection (a frame
// reader, a serve loop and the handler), keeps the 4 KiB reader and writer
// of the HTTP/1 connection that turned into it, and writes each flushed
// frame from a new goroutine. Here a connection has at most one goroutine
// of its own, the frame reader, and none while it has nothing to read: on
// Linux an idle connection waits in the server's epoll instance, whose one
// goroutine starts a reader again when bytes arrive. A handler writes its
// frames to the socket itself, under the connection's write lock, from a
// buffer taken from a pool only for that write. Frame parsing and HPACK
// are golang.org/x/net/http2's.
//
// Limits: 250 concurrent streams per connection (more are refused with
// REFUSED_STREAM) and 1,000 running handlers (a client that resets streams
// whose handlers go on gets GOAWAY ENHANCE_YOUR_CALM), 64 KiB of request
// headers, 64 KiB of request body buffered per stream (flow control), a
// write that makes no progress for 30 s closes the connection, and a
// connection must send its preface and first SETTINGS within the HTTP
// server's ReadHeaderTimeout (10 s if unset). A connection with no stream
// for the server's IdleTimeout (if set) is told to go away and closed.
//
// Not done here: TLS (a TLS listener should go to net/http directly),
// server push, request trailers (read and dropped), the http.Server's
// ReadTimeout and WriteTimeout, and the Date and sniffed Content-Type
// headers net/http adds to responses.
package h2c

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// Server serves h2c connections itself and HTTP/1.1 through its http.Server.
type Server struct {
	http     *http.Server
	base     context.Context // the connections' parent, holding http.ServerContextKey
	logger   *slog.Logger
	fallback *connListener

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	pending   map[net.Conn]struct{} // accepted, preface not read yet
	conns     map[*conn]struct{}
	closing   bool
	serving   bool    // the http.Server serves fallback
	poller    *poller // set by the first Serve; nil: connections keep their reader
}

// NewServer returns a server that serves srv.Handler over h2c and lets srv
// serve HTTP/1.1 connections (srv's Protocols are set to HTTP/1 only).
// Panics in handlers are logged to logger.
func NewServer(srv *http.Server, logger *slog.Logger) *Server {
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	srv.Protocols = protocols
	return &Server{
		http:      srv,
		base:      context.WithValue(context.Background(), http.ServerContextKey, srv),
		logger:    logger,
		fallback:  newConnListener(),
		listeners: make(map[net.Listener]struct{}),
		pending:   make(map[net.Conn]struct{}),
		conns:     make(map[*conn]struct{}),
	}
}

// Serve accepts connections on ln until the server is shut down; it then
// returns http.ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return http.ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	startFallback := !s.serving
	if startFallback {
		s.poller = newPoller()
	}
	s.serving = true
	s.mu.Unlock()
	if startFallback {
		s.fallback.addr = ln.Addr()
		go s.http.Serve(s.fallback)
	}

	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosing() {
				return http.ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: wait and retry, as
			// net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.logger.Warn("h2c: accept", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			nc.Close()
			return http.ErrServerClosed
		}
		s.pending[nc] = struct{}{}
		s.mu.Unlock()
		go s.serveConn(nc)
	}
}

// serveConn reads the client preface: a connection that starts with it is
// served here, any other goes to the http.Server with the bytes read so far.
func (s *Server) serveConn(nc net.Conn) {
	nc.SetReadDeadline(time.Now().Add(s.handshakeTimeout()))
	var got [len(http2.ClientPreface)]byte
	n := 0
	var readErr error // with the bytes so far still a preface
	for n < len(got) && readErr == nil {
		var m int
		m, readErr = nc.Read(got[n:])
		n += m
		if !bytes.HasPrefix([]byte(http2.ClientPreface), got[:n]) {
			readErr = nil
			break // HTTP/1: an HTTP/1 request can be shorter than the preface
		}
	}
	isH2 := string(got[:n]) == http2.ClientPreface
	var c *conn
	var prefaceErr error
	if isH2 {
		// The SETTINGS go out before the connection is registered, so a
		// shutdown's GOAWAY cannot precede them.
		c = newConn(s, nc)
		prefaceErr = c.writePreface()
	}
	s.mu.Lock()
	delete(s.pending, nc)
	closing := s.closing || readErr != nil || prefaceErr != nil
	if isH2 && !closing {
		s.conns[c] = struct{}{}
	}
	s.mu.Unlock()
	switch {
	case closing:
		nc.Close()
		return
	case !isH2:
		nc.SetReadDeadline(time.Time{})
		if !s.fallback.push(&prefixedConn{Conn: nc, prefix: bytes.Clone(got[:n])}) {
			nc.Close()
		}
		return
	}
	c.serve()
}

// forget drops a connection that ended.
func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Server) handshakeTimeout() time.Duration {
	if s.http.ReadHeaderTimeout > 0 {
		return s.http.ReadHeaderTimeout
	}
	return 10 * time.Second
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// RegisterOnShutdown registers f to run when Shutdown starts, once the
// listeners are closed.
func (s *Server) RegisterOnShutdown(f func()) { s.http.RegisterOnShutdown(f) }

// Shutdown stops accepting connections, tells every h2c connection to go
// away (GOAWAY: requests in flight finish, new ones go elsewhere), shuts the
// http.Server down, and waits for every connection to close or ctx to end.
func (s *Server) Shutdown(ctx context.Context) error {
	conns := s.stopAccepting()
	httpDone := make(chan error, 1)
	go func() { httpDone <- s.http.Shutdown(ctx) }()
	for _, c := range conns {
		go c.goAway() // a peer that stopped reading must not hold up the others
	}
	defer s.stopPoller()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for s.connCount() > 0 {
		select {
		case <-ctx.Done():
			s.closeConns()
			return ctx.Err()
		case <-tick.C:
		}
	}
	return <-httpDone
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.stopAccepting()
	s.closeConns()
	s.stopPoller()
	return s.http.Close()
}

// stopAccepting closes the listeners and returns the h2c connections open.
func (s *Server) stopAccepting() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	for nc := range s.pending {
		nc.Close() // no request read yet
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns
}

// stopPoller stops the poller once no connection needs it: every one
// ended or was closed (a closed one reads on to its end without it).
func (s *Server) stopPoller() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.poller != nil {
		s.poller.stop()
	}
}

func (s *Server) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *Server) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.closeNet()
	}
}

// connListener is the listener the http.Server accepts from: the
// connections that did not start with the HTTP/2 preface.
type connListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newConnListener() *connListener {
	return &connListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }

// push hands c to the http.Server; false once it stopped accepting.
func (l *connListener) push(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

// prefixedConn gives back the bytes read while looking for the preface.
type prefixedConn struct {
	net.Conn
	prefix []byte
}

// CloseWrite lets net/http close an HTTP/1.1 connection gracefully.
func (c *prefixedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ReadFrom keeps the connection's sendfile for files served over HTTP/1.1.
func (c *prefixedConn) ReadFrom(r io.Reader) (int64, error) { return io.Copy(c.Conn, r) }

func (c *prefixedConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
