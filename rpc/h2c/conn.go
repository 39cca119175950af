package h2c

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

const (
	maxConcurrentStreams = 250
	// maxHandlers bounds the handlers still running on a connection, also
	// those of streams the client reset (which no longer count as open).
	maxHandlers       = 4 * maxConcurrentStreams
	maxHeaderListSize = 64 << 10
	// defaultMaxFrame is the protocol's initial SETTINGS_MAX_FRAME_SIZE,
	// both ways; we announce no other.
	defaultMaxFrame = 16 << 10
	// defaultWindow is the protocol's initial window, both ways: what a
	// client may send on a stream before the handler reads, and what we
	// may send before the client grants more.
	defaultWindow = 65535
	// connWindow is the connection's receive window; streams bound what is
	// buffered, so it is large and topped up when half used.
	connWindow = 1 << 30
	// writeTimeout closes a connection whose peer stopped reading.
	writeTimeout = 30 * time.Second
	// goAwayDelay is how long a connection told to go away stays open with
	// no stream, so the client reads the GOAWAY before the close.
	goAwayDelay = time.Second
	maxWindow   = 1<<31 - 1
)

var errStreamClosed = errors.New("h2c: stream closed")

// conn is one HTTP/2 connection. Its goroutine reads frames; handlers write.
type conn struct {
	srv *Server
	nc  net.Conn
	raw syscall.RawConn // nc's descriptor, for the poller; nil if it has none
	fr  *http2.Framer
	ctx context.Context // the streams' parent; close cancels each stream's

	handlers sync.WaitGroup

	wmu      sync.Mutex // serializes writes to nc
	writeErr error

	// deadlineMu orders setting the socket's write deadline: a write's own,
	// and a stream's write deadline cutting short the write in progress.
	deadlineMu sync.Mutex
	writing    *stream // the stream whose frames are being written

	mu            sync.Mutex
	streams       map[uint32]*stream // every stream whose handler runs
	open          int                // those the client counts as open
	lastID        uint32             // the highest stream the client opened
	sendWindow    int64              // connection-level, what we may still send
	peerWindow    int64              // the client's SETTINGS_INITIAL_WINDOW_SIZE
	appliedWindow int64              // peerWindow as the open streams' windows have it
	peerMaxFrame  int
	recvUnacked   int64       // received since the last connection WINDOW_UPDATE
	idle          *time.Timer // while it has no stream: goes away at the server's IdleTimeout
	goingAway     bool
	closed        bool
	parked        bool  // no reader: the server's poller watches the socket
	pollFD        int32 // the socket's descriptor in the poller (the poller's lock guards it)
}

func newConn(s *Server, nc net.Conn) *conn {
	ctx := context.WithValue(s.base, http.LocalAddrContextKey, nc.LocalAddr())
	c := &conn{
		srv: s, nc: nc, ctx: ctx,
		fr:         http2.NewFramer(nil, nc),
		streams:    make(map[uint32]*stream),
		sendWindow: defaultWindow,
		peerWindow: defaultWindow, appliedWindow: defaultWindow,
		peerMaxFrame: defaultMaxFrame,
	}
	if sc, ok := nc.(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn() // made once: park runs before every frame
	}
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = maxHeaderListSize
	c.fr.SetMaxReadFrameSize(defaultMaxFrame)
	return c
}

// writePreface sends the server's SETTINGS, the first frame it must send.
func (c *conn) writePreface() error {
	var b []byte
	b = appendFrameHeader(b, 18, http2.FrameSettings, 0, 0)
	b = appendSetting(b, http2.SettingHeaderTableSize, 0)
	b = appendSetting(b, http2.SettingMaxConcurrentStreams, maxConcurrentStreams)
	b = appendSetting(b, http2.SettingMaxHeaderListSize, maxHeaderListSize)
	b = appendWindowUpdate(b, 0, connWindow-defaultWindow)
	return c.write(b)
}

// serve reads the client's first frame, its SETTINGS, then the frames
// after it. The preface was written.
func (c *conn) serve() {
	c.mu.Lock()
	c.startIdleTimerLocked()
	c.mu.Unlock()
	f, err := c.fr.ReadFrame()
	if sf, ok := f.(*http2.SettingsFrame); err != nil || !ok || sf.IsAck() {
		c.writeGoAway(http2.ErrCodeProtocol) // the client's preface ends with SETTINGS
		c.finish()
		return
	}
	c.nc.SetReadDeadline(time.Time{})
	if !c.handleErr(c.handle(f)) {
		c.finish()
		return
	}
	c.readFrames()
}

// readFrames reads frames until the connection ends, then finishes it. When
// the socket has nothing to read, the connection waits in the server's
// poller instead, which calls readFrames again once there is.
func (c *conn) readFrames() {
	for {
		if c.srv.poller != nil && c.srv.poller.park(c) {
			return
		}
		f, err := c.fr.ReadFrame()
		if err == nil {
			err = c.handle(f)
		}
		if !c.handleErr(err) {
			c.finish()
			return
		}
	}
}

// handleErr acts on the error of reading or handling a frame, and reports
// whether the connection goes on.
func (c *conn) handleErr(err error) bool {
	var se http2.StreamError
	var ce http2.ConnectionError
	switch {
	case err == nil:
	case errors.As(err, &se):
		c.resetStream(se.StreamID, se.Code)
	case errors.As(err, &ce):
		c.writeGoAway(http2.ErrCode(ce))
		return false
	case errors.Is(err, http2.ErrFrameTooLarge):
		c.writeGoAway(http2.ErrCodeFrameSize)
		return false
	default:
		return false // the client went away
	}
	return true
}

// unpark starts a reader for a parked connection: its socket has bytes, or
// it was closed.
func (c *conn) unpark() {
	c.mu.Lock()
	parked := c.parked
	c.parked = false
	c.mu.Unlock()
	if parked {
		go c.readFrames()
	}
}

// finish ends the connection once it is read no more: every stream ends,
// the handlers return, and the server forgets it.
func (c *conn) finish() {
	c.close()
	c.handlers.Wait()
	if c.srv.poller != nil {
		c.srv.poller.forget(c)
	}
	c.srv.forget(c)
}

// handle acts on one frame from the client.
func (c *conn) handle(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if f.IsAck() {
			// The client encodes no more headers into a dynamic table
			// (SETTINGS_HEADER_TABLE_SIZE 0): the one it filled before
			// is dropped, and nothing is kept per connection.
			c.fr.ReadMetaHeaders = hpack.NewDecoder(0, nil)
			return nil
		}
		if err := f.ForeachSetting(c.applySetting); err != nil {
			return err
		}
		if err := c.resizeStreamWindows(); err != nil {
			return err
		}
		return c.write(appendFrameHeader(nil, 0, http2.FrameSettings, http2.FlagSettingsAck, 0))
	case *http2.PingFrame:
		if f.IsAck() {
			return nil
		}
		b := appendFrameHeader(nil, 8, http2.FramePing, http2.FlagPingAck, 0)
		return c.write(append(b, f.Data[:]...))
	case *http2.WindowUpdateFrame:
		return c.windowUpdate(f.StreamID, f.Increment)
	case *http2.MetaHeadersFrame:
		return c.headers(f)
	case *http2.DataFrame:
		return c.data(f)
	case *http2.RSTStreamFrame:
		return c.resetByClient(f.StreamID)
	case *http2.PushPromiseFrame:
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	return nil // PRIORITY, GOAWAY (the client closes when done), unknown types
}

func (c *conn) applySetting(s http2.Setting) error {
	if err := s.Valid(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch s.ID {
	case http2.SettingInitialWindowSize:
		c.peerWindow = int64(s.Val) // applied to the streams by resizeStreamWindows
	case http2.SettingMaxFrameSize:
		c.peerMaxFrame = int(s.Val)
	}
	return nil
}

// resizeStreamWindows applies a change of SETTINGS_INITIAL_WINDOW_SIZE to
// the open streams' send windows, once per SETTINGS frame.
func (c *conn) resizeStreamWindows() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delta := c.peerWindow - c.appliedWindow
	if delta == 0 {
		return nil
	}
	c.appliedWindow = c.peerWindow
	for _, s := range c.streams {
		s.sendWindow += delta
		if s.sendWindow > maxWindow {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		s.wake.Broadcast()
	}
	return nil
}

func (c *conn) windowUpdate(id, increment uint32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id == 0 {
		c.sendWindow += int64(increment)
		if c.sendWindow > maxWindow {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		c.wakeWindowWaitersLocked()
	} else if s := c.streams[id]; s != nil {
		s.sendWindow += int64(increment)
		if s.sendWindow > maxWindow {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeFlowControl}
		}
		s.wake.Broadcast()
	}
	return nil
}

// wakeWindowWaitersLocked wakes the streams waiting for the connection's
// send window. mu must be held.
func (c *conn) wakeWindowWaitersLocked() {
	for _, s := range c.streams {
		if s.waitingForWindow {
			s.wake.Broadcast()
		}
	}
}

// headers opens a stream and starts its handler, or ends a request body
// with trailers.
func (c *conn) headers(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	if id%2 == 0 {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	c.mu.Lock()
	if s := c.streams[id]; s != nil {
		defer c.mu.Unlock()
		if !f.StreamEnded() || s.bodyEnded {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
		s.bodyEnded = true // the request's trailers, which no handler here reads
		s.wake.Broadcast()
		return nil
	}
	if id <= c.lastID {
		c.mu.Unlock()
		if f.StreamEnded() {
			return nil // trailers of a stream that ended on our side
		}
		return http2.ConnectionError(http2.ErrCodeStreamClosed)
	}
	// One critical section from here to the stream's registration, so
	// that a GOAWAY naming this stream as served finds it registered.
	c.lastID = id
	switch {
	case c.goingAway:
		c.mu.Unlock()
		return nil // past the GOAWAY's last stream: the client retries it elsewhere
	case len(c.streams) >= maxHandlers:
		c.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm) // resetting streams whose handlers still run
	case c.open >= maxConcurrentStreams:
		c.mu.Unlock()
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeRefusedStream}
	case f.Truncated:
		c.mu.Unlock()
		return c.respondNow(id, http.StatusRequestHeaderFieldsTooLarge)
	}
	req, err := c.newRequest(f)
	if err != nil {
		c.mu.Unlock()
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	s := newStream(c, id, f.StreamEnded())
	s.head = req.Method == http.MethodHead
	s.sendWindow = c.peerWindow
	req = req.WithContext(s.ctx)
	if !f.StreamEnded() {
		req.Body = requestBody{s}
	}
	if c.idle != nil {
		c.idle.Stop()
		c.idle = nil // not kept by a connection holding a long stream
	}
	c.streams[id] = s
	s.counted = true
	c.open++
	c.handlers.Add(1)
	c.mu.Unlock()
	go c.runHandler(s, req)
	return nil
}

// data buffers a request body's bytes for its handler.
func (c *conn) data(f *http2.DataFrame) error {
	id, n := f.StreamID, int64(f.Length)
	c.mu.Lock()
	c.recvUnacked += n
	var topUp int64
	if c.recvUnacked >= connWindow/2 {
		topUp, c.recvUnacked = c.recvUnacked, 0
	}
	padding, err := c.bufferBody(id, f)
	c.mu.Unlock()
	if topUp > 0 {
		if err := c.write(appendWindowUpdate(nil, 0, uint32(topUp))); err != nil {
			return err
		}
	}
	if padding > 0 {
		if err := c.write(appendWindowUpdate(nil, id, uint32(padding))); err != nil {
			return err
		}
	}
	return err
}

// bufferBody adds a DATA frame's bytes to its stream's body and returns
// the frame's padding, whose window goes back to the client at once. mu
// must be held.
func (c *conn) bufferBody(id uint32, f *http2.DataFrame) (padding int64, err error) {
	n := int64(f.Length)
	s := c.streams[id]
	switch {
	case s == nil && id > c.lastID:
		return 0, http2.ConnectionError(http2.ErrCodeProtocol) // an idle stream
	case s == nil || s.reset:
		return 0, nil // a stream that ended: frames in flight are ignored
	case s.bodyEnded:
		return 0, http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
	case n > s.recvWindow:
		return 0, http2.StreamError{StreamID: id, Code: http2.ErrCodeFlowControl}
	}
	data := f.Data()
	padding = n - int64(len(data))
	s.recvWindow -= int64(len(data))
	s.body = append(s.body, data...)
	if f.StreamEnded() {
		s.bodyEnded = true
		padding = 0 // the stream takes nothing more
	}
	s.wake.Broadcast()
	return padding, nil
}

func (c *conn) resetByClient(id uint32) error {
	c.mu.Lock()
	s := c.streams[id]
	if s == nil {
		idle := id > c.lastID
		c.mu.Unlock()
		if idle {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		return nil
	}
	// The context first: a handler whose body read fails on the reset
	// finds its context done.
	s.cancel()
	c.resetLocked(s)
	c.mu.Unlock()
	return nil
}

// cancelStream resets a stream of a handler still running, if it is.
func (c *conn) cancelStream(s *stream, code http2.ErrCode) {
	c.mu.Lock()
	running := c.streams[s.id] == s
	if running {
		c.resetLocked(s)
	}
	c.mu.Unlock()
	if running {
		s.cancel()
		c.writeReset(s.id, code)
	}
}

// resetStream ends a stream with a RST_STREAM of ours, known to the
// connection or not (a refused or malformed one).
func (c *conn) resetStream(id uint32, code http2.ErrCode) {
	c.mu.Lock()
	s := c.streams[id]
	c.mu.Unlock()
	if s != nil {
		c.cancelStream(s, code)
	} else {
		c.writeReset(id, code)
	}
}

// resetLocked marks s reset, by either side: its waits end and it no
// longer counts as open. mu must be held; the caller cancels s.ctx.
func (c *conn) resetLocked(s *stream) {
	s.reset = true
	s.wake.Broadcast()
	c.closedLocked(s)
}

func (c *conn) writeReset(id uint32, code http2.ErrCode) {
	b := appendFrameHeader(nil, 4, http2.FrameRSTStream, 0, id)
	c.write(binary.BigEndian.AppendUint32(b, uint32(code)))
}

// respondNow answers a stream with a status and no body, without a handler.
func (c *conn) respondNow(id uint32, status int) error {
	c.mu.Lock()
	maxFrame := c.peerMaxFrame
	c.mu.Unlock()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b := c.appendHeaderBlock(nil, id, maxFrame, true, statusField(status))
	return c.writeLocked(b, nil)
}

// goAway tells the client to open no more streams; the connection closes
// once its streams end.
func (c *conn) goAway() {
	c.mu.Lock()
	if c.goingAway || c.closed {
		c.mu.Unlock()
		return
	}
	c.goingAway = true
	idle := len(c.streams) == 0
	last := c.lastID // later streams are ignored, not served
	c.mu.Unlock()
	c.writeGoAwayFrame(last, http2.ErrCodeNo)
	if idle {
		c.closeSoon()
	}
}

// startIdleTimerLocked starts the IdleTimeout of a connection that has no
// stream. mu must be held.
func (c *conn) startIdleTimerLocked() {
	if timeout := c.srv.http.IdleTimeout; timeout > 0 {
		c.idle = time.AfterFunc(timeout, c.idleTimedOut)
	}
}

// idleTimedOut makes a connection that has had no stream for the server's
// IdleTimeout go away.
func (c *conn) idleTimedOut() {
	c.mu.Lock()
	busy := len(c.streams) > 0 // a stream came as the timer fired
	c.mu.Unlock()
	if !busy {
		c.goAway()
	}
}

// writeGoAway ends the connection on an error of the client's.
func (c *conn) writeGoAway(code http2.ErrCode) {
	c.mu.Lock()
	last := c.lastID
	c.mu.Unlock()
	c.writeGoAwayFrame(last, code)
}

func (c *conn) writeGoAwayFrame(last uint32, code http2.ErrCode) {
	b := appendFrameHeader(nil, 8, http2.FrameGoAway, 0, 0)
	b = binary.BigEndian.AppendUint32(b, last)
	c.write(binary.BigEndian.AppendUint32(b, uint32(code)))
}

// closeSoon closes a connection told to go away once the client had time
// to read the GOAWAY.
func (c *conn) closeSoon() {
	time.AfterFunc(goAwayDelay, c.closeNet)
}

// close ends every stream and the connection.
func (c *conn) close() {
	c.mu.Lock()
	c.closed = true
	streams := make([]*stream, 0, len(c.streams))
	for _, s := range c.streams {
		c.resetLocked(s)
		streams = append(streams, s)
	}
	if c.idle != nil {
		c.idle.Stop()
	}
	c.mu.Unlock()
	for _, s := range streams {
		s.cancel()
	}
	c.nc.Close()
}

// closeNet closes the socket; a parked connection gets its reader back to
// see the end.
func (c *conn) closeNet() {
	c.nc.Close()
	c.unpark()
}

// closedLocked stops counting a stream as open: both sides ended it, or
// either reset it. mu must be held.
func (c *conn) closedLocked(s *stream) {
	if s.counted {
		s.counted = false
		c.open--
	}
}

// endStream forgets a stream whose handler returned.
func (c *conn) endStream(s *stream) {
	c.mu.Lock()
	delete(c.streams, s.id)
	bodyUnread := !s.bodyEnded && !s.reset
	c.resetLocked(s) // a goroutine of the handler's may still read the body
	if s.deadline != nil {
		s.deadline.Stop()
	}
	last := c.goingAway && len(c.streams) == 0
	if len(c.streams) == 0 && !c.closed {
		c.startIdleTimerLocked()
	}
	c.mu.Unlock()
	s.cancel()
	if bodyUnread {
		c.writeReset(s.id, http2.ErrCodeNo) // the client may stop sending
	}
	if last {
		c.closeSoon()
	}
}

// write writes b to the connection.
func (c *conn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(b, nil)
}

// writeLocked writes b, the frames of stream s (nil: the connection's),
// with wmu held; a failed write closes the connection.
func (c *conn) writeLocked(b []byte, s *stream) error {
	if c.writeErr != nil {
		return c.writeErr
	}
	c.deadlineMu.Lock()
	c.writing = s
	c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	c.deadlineMu.Unlock()
	_, err := c.nc.Write(b)
	c.deadlineMu.Lock()
	c.writing = nil
	c.deadlineMu.Unlock()
	if err != nil {
		c.writeErr = err
		c.closeNet()
		return err
	}
	return nil
}

// headerEncoder is an HPACK encoder and its output. With no dynamic table
// for responses (a stream sends its headers once) an encoder keeps no
// state of a connection's, so connections share them from a pool rather
// than keep one each.
type headerEncoder struct {
	enc *hpack.Encoder
	buf bytes.Buffer
}

var headerEncoders = sync.Pool{New: func() any {
	e := new(headerEncoder)
	e.enc = hpack.NewEncoder(&e.buf)
	e.enc.SetMaxDynamicTableSizeLimit(0)
	return e
}}

// appendHeaderBlock appends fields as a HEADERS frame and the CONTINUATION
// frames it needs.
func (c *conn) appendHeaderBlock(b []byte, id uint32, maxFrame int, endStream bool, fields ...[]hpack.HeaderField) []byte {
	e := headerEncoders.Get().(*headerEncoder)
	defer headerEncoders.Put(e)
	e.buf.Reset()
	for _, list := range fields {
		for _, f := range list {
			e.enc.WriteField(f)
		}
	}
	block := e.buf.Bytes()
	typ := http2.FrameHeaders
	for {
		n := min(len(block), maxFrame)
		var flags http2.Flags
		if n == len(block) {
			flags |= http2.FlagHeadersEndHeaders
		}
		if endStream && typ == http2.FrameHeaders {
			flags |= http2.FlagHeadersEndStream
		}
		b = appendFrameHeader(b, n, typ, flags, id)
		b = append(b, block[:n]...)
		block = block[n:]
		if len(block) == 0 {
			return b
		}
		typ = http2.FrameContinuation
	}
}

// appendData appends data as DATA frames of at most maxFrame bytes; an
// empty data with endStream is one empty frame.
func appendData(b []byte, id uint32, data []byte, maxFrame int, endStream bool) []byte {
	for {
		n := min(len(data), maxFrame)
		var flags http2.Flags
		if endStream && n == len(data) {
			flags = http2.FlagDataEndStream
		}
		b = appendFrameHeader(b, n, http2.FrameData, flags, id)
		b = append(b, data[:n]...)
		data = data[n:]
		if len(data) == 0 {
			return b
		}
	}
}

func appendFrameHeader(b []byte, length int, typ http2.FrameType, flags http2.Flags, id uint32) []byte {
	b = append(b, byte(length>>16), byte(length>>8), byte(length), byte(typ), byte(flags))
	return binary.BigEndian.AppendUint32(b, id&(1<<31-1))
}

func appendSetting(b []byte, id http2.SettingID, val uint32) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(id))
	return binary.BigEndian.AppendUint32(b, val)
}

func appendWindowUpdate(b []byte, id, increment uint32) []byte {
	b = appendFrameHeader(b, 4, http2.FrameWindowUpdate, 0, id)
	return binary.BigEndian.AppendUint32(b, increment)
}
