package h2c

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// flushAt is how much response a handler buffers before writing it
// without a Flush.
const flushAt = 16 << 10

// stream is one request and its response.
type stream struct {
	c      *conn
	id     uint32
	ctx    context.Context
	cancel context.CancelFunc

	// Guarded by c.mu.
	wake             sync.Cond // on c.mu: the stream's window, body or state changed
	waitingForWindow bool      // reserve waits for the connection's window
	counted          bool      // in c.open
	sendWindow       int64
	reset            bool   // by either side, or the connection closed
	body             []byte // received, not yet read by the handler
	bodyEnded        bool
	recvWindow       int64       // what the client may still send
	readUnacked      int64       // read by the handler since the last WINDOW_UPDATE
	deadline         *time.Timer // resets the stream at the write deadline

	// Used by the handler's goroutine only.
	header     http.Header
	sent       http.Header // header as of WriteHeader, until written
	declared   []string    // the Trailer header as of WriteHeader
	status     int
	headerSent bool
	head       bool    // a HEAD request: the body written is not sent
	out        *[]byte // response bytes not yet written, from outPool
	err        error   // the first write error
}

var outPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

func newStream(c *conn, id uint32, bodyEnded bool) *stream {
	ctx, cancel := context.WithCancel(c.ctx)
	s := &stream{
		c: c, id: id, ctx: ctx, cancel: cancel,
		bodyEnded: bodyEnded, recvWindow: defaultWindow,
		header: make(http.Header),
	}
	s.wake.L = &c.mu
	return s
}

// newRequest makes the handler's request from a HEADERS frame.
func (c *conn) newRequest(f *http2.MetaHeadersFrame) (*http.Request, error) {
	method, path := f.PseudoValue("method"), f.PseudoValue("path")
	if method == "" || method == http.MethodConnect || path == "" || f.PseudoValue("scheme") == "" {
		return nil, errors.New("h2c: missing or unsupported pseudo-header")
	}
	u, err := url.ParseRequestURI(path)
	if err != nil {
		return nil, err
	}
	regular := f.RegularFields()
	header := make(http.Header, len(regular))
	for _, hf := range regular {
		key := textproto.CanonicalMIMEHeaderKey(hf.Name)
		header[key] = append(header[key], hf.Value)
	}
	if cookies := header["Cookie"]; len(cookies) > 1 {
		header["Cookie"] = []string{strings.Join(cookies, "; ")} // RFC 9113 §8.2.3
	}
	host := f.PseudoValue("authority")
	if host == "" {
		host = header.Get("Host")
	}
	contentLength := int64(-1)
	if f.StreamEnded() {
		contentLength = 0
	} else if n, err := strconv.ParseInt(header.Get("Content-Length"), 10, 64); err == nil && n >= 0 {
		contentLength = n
	}
	return &http.Request{
		Method: method, URL: u, RequestURI: path, Host: host, Header: header,
		Proto: "HTTP/2.0", ProtoMajor: 2,
		ContentLength: contentLength, Body: http.NoBody,
		RemoteAddr: c.nc.RemoteAddr().String(),
	}, nil
}

// runHandler serves one stream and ends it.
func (c *conn) runHandler(s *stream, req *http.Request) {
	path := req.URL.Path // not req: a long stream's handler may keep a copy of its own
	defer c.handlers.Done()
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				c.srv.logger.Error("h2c: handler panic", "path", path, "panic", p, "stack", string(debug.Stack()))
			}
			c.cancelStream(s, http2.ErrCodeInternal)
		}
		c.endStream(s)
		s.releaseOut()
	}()
	c.srv.http.Handler.ServeHTTP(responseWriter{s}, req)
	s.flush(true)
}

// requestBody reads the bytes the connection buffered for a stream, and
// lets the client send more.
type requestBody struct{ s *stream }

func (b requestBody) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s, c := b.s, b.s.c
	c.mu.Lock()
	for len(s.body) == 0 && !s.bodyEnded && !s.reset {
		s.wake.Wait()
	}
	if len(s.body) == 0 {
		c.mu.Unlock()
		if s.bodyEnded {
			return 0, io.EOF
		}
		return 0, errStreamClosed
	}
	n := copy(p, s.body)
	s.body = s.body[n:]
	if len(s.body) == 0 {
		s.body = nil
	}
	s.readUnacked += int64(n)
	var increment int64
	if s.readUnacked >= defaultWindow/2 && !s.bodyEnded && !s.reset {
		increment, s.readUnacked = s.readUnacked, 0
		s.recvWindow += increment
	}
	c.mu.Unlock()
	if increment > 0 {
		c.write(appendWindowUpdate(nil, s.id, uint32(increment)))
	}
	return n, nil
}

func (requestBody) Close() error { return nil }

// responseWriter is the handler's http.ResponseWriter and http.Flusher.
type responseWriter struct{ s *stream }

func (w responseWriter) Header() http.Header { return w.s.header }

func (w responseWriter) WriteHeader(code int) {
	s := w.s
	if s.status != 0 || code < 200 || code > 999 {
		return // informational responses are not sent; a second status is ignored
	}
	s.status = code
	s.sent = s.header.Clone()
	s.declared = s.sent["Trailer"]
}

func (w responseWriter) Write(p []byte) (int, error) {
	s := w.s
	if s.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if s.err != nil {
		return 0, s.err
	}
	if s.head {
		return len(p), nil
	}
	if s.out == nil {
		s.out = outPool.Get().(*[]byte)
	}
	*s.out = append(*s.out, p...)
	if len(*s.out) >= flushAt {
		if err := s.flush(false); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (w responseWriter) Flush() { w.FlushError() }

// SetWriteDeadline makes the stream's writes fail from t on
// (http.ResponseController): at t the stream is reset, and a write then
// blocked on the socket fails and closes the connection, whose peer
// stopped reading.
func (w responseWriter) SetWriteDeadline(t time.Time) error {
	s, c := w.s, w.s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.deadline != nil {
		s.deadline.Stop()
		s.deadline = nil
	}
	if !t.IsZero() && !s.reset {
		s.deadline = time.AfterFunc(time.Until(t), s.writeDeadlinePassed)
	}
	return nil
}

func (s *stream) writeDeadlinePassed() {
	c := s.c
	c.deadlineMu.Lock()
	if c.writing == s {
		c.nc.SetWriteDeadline(time.Now())
	}
	c.deadlineMu.Unlock()
	c.cancelStream(s, http2.ErrCodeCancel)
}

// FlushError writes what the handler wrote so far (http.ResponseController).
func (w responseWriter) FlushError() error { return w.s.flush(false) }

// flush writes the headers if not yet written and the buffered body, as
// the flow-control windows allow; with end, also the trailers or the end
// of the stream.
func (s *stream) flush(end bool) error {
	if s.err != nil {
		return s.err
	}
	if s.status == 0 {
		responseWriter{s}.WriteHeader(http.StatusOK)
	}
	var data []byte
	if s.out != nil {
		data = *s.out
	}
	var trailers []hpack.HeaderField
	if end {
		trailers = s.trailers()
	}
	endWithData := end && trailers == nil
	for {
		n, maxFrame, err := s.reserve(len(data))
		if err != nil {
			s.err = err
			break
		}
		final := n == len(data)
		c := s.c
		c.wmu.Lock()
		if !s.stillOpen(n, end && final) {
			c.wmu.Unlock()
			s.err = errStreamClosed
			break
		}
		b := outPool.Get().(*[]byte)
		ended := false
		if !s.headerSent {
			ended = endWithData && final && len(data) == 0
			*b = c.appendHeaderBlock(*b, s.id, maxFrame, ended, statusField(s.status), s.headerFields())
			s.headerSent, s.sent = true, nil
		}
		if n > 0 || (endWithData && final && !ended) {
			*b = appendData(*b, s.id, data[:n], maxFrame, endWithData && final)
		}
		if end && final && trailers != nil {
			*b = c.appendHeaderBlock(*b, s.id, maxFrame, true, trailers)
		}
		err = c.writeLocked(*b, s)
		c.wmu.Unlock()
		*b = (*b)[:0]
		outPool.Put(b)
		data = data[n:]
		if err != nil {
			s.err = err
			break
		}
		if final {
			break
		}
	}
	s.releaseOut()
	return s.err
}

// stillOpen reports whether the stream was not reset since its reserve;
// if it was, its n reserved bytes go back to the connection's window. With
// wmu held, so that nothing is written after our RST_STREAM. A write that
// ends a stream whose request ended stops counting it as open before it
// goes out: the client may open another as soon as it reads it.
func (s *stream) stillOpen(n int, endsStream bool) bool {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.reset {
		c.sendWindow += int64(n)
		c.wakeWindowWaitersLocked()
		return false
	}
	if endsStream && s.bodyEnded {
		c.closedLocked(s)
	}
	return true
}

// reserve takes up to want bytes of both send windows, waiting for them.
func (s *stream) reserve(want int) (n, maxFrame int, err error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if s.reset {
			return 0, 0, errStreamClosed
		}
		if want == 0 {
			return 0, c.peerMaxFrame, nil
		}
		if avail := min(s.sendWindow, c.sendWindow); avail > 0 {
			n := int(min(int64(want), avail))
			s.sendWindow -= int64(n)
			c.sendWindow -= int64(n)
			return n, c.peerMaxFrame, nil
		}
		s.waitingForWindow = c.sendWindow <= 0
		s.wake.Wait()
		s.waitingForWindow = false
	}
}

func (s *stream) releaseOut() {
	if s.out != nil {
		*s.out = (*s.out)[:0]
		outPool.Put(s.out)
		s.out = nil
	}
}

// headerFields are the response headers as of WriteHeader, without the
// ones HTTP/2 forbids and the trailers.
func (s *stream) headerFields() []hpack.HeaderField {
	fields := make([]hpack.HeaderField, 0, len(s.sent))
	for key, values := range s.sent {
		if key == "Trailer" || strings.HasPrefix(key, http.TrailerPrefix) || isConnectionHeader(key) || isDeclared(s.declared, key) {
			continue
		}
		fields = appendFields(fields, key, values)
	}
	return fields
}

// trailers are the values of the trailers the handler declared in a
// Trailer header, and of the keys it set with http.TrailerPrefix.
func (s *stream) trailers() []hpack.HeaderField {
	var fields []hpack.HeaderField
	for _, names := range s.declared {
		for name := range strings.SplitSeq(names, ",") {
			key := http.CanonicalHeaderKey(strings.TrimSpace(name))
			fields = appendFields(fields, key, s.header[key])
		}
	}
	for key, values := range s.header {
		if name, ok := strings.CutPrefix(key, http.TrailerPrefix); ok {
			fields = appendFields(fields, name, values)
		}
	}
	return fields
}

func appendFields(fields []hpack.HeaderField, key string, values []string) []hpack.HeaderField {
	if !httpguts.ValidHeaderFieldName(key) {
		return fields
	}
	name := strings.ToLower(key)
	for _, v := range values {
		if httpguts.ValidHeaderFieldValue(v) {
			fields = append(fields, hpack.HeaderField{Name: name, Value: v})
		}
	}
	return fields
}

func isDeclared(declared []string, key string) bool {
	for _, names := range declared {
		for name := range strings.SplitSeq(names, ",") {
			if strings.EqualFold(strings.TrimSpace(name), key) {
				return true
			}
		}
	}
	return false
}

// isConnectionHeader reports the HTTP/1 headers HTTP/2 forbids (RFC 9113
// §8.2.2).
func isConnectionHeader(key string) bool {
	switch key {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

func statusField(status int) []hpack.HeaderField {
	return []hpack.HeaderField{{Name: ":status", Value: strconv.Itoa(status)}}
}
