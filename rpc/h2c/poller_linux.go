package h2c

import (
	"errors"
	"sync"
	"syscall"
)

// poller watches idle connections, so that a connection with nothing to
// read holds no goroutine: its reader returns, and the poller starts a new
// one when bytes (or the end) arrive. One epoll instance and one goroutine
// serve all of a server's connections.
type poller struct {
	epfd int
	wake [2]int // a pipe: a byte on it stops run

	mu      sync.Mutex
	conns   map[int32]*conn // by file descriptor, while it is registered
	stopped bool
}

// newPoller returns a running poller, or nil if epoll is not available
// (connections then keep their reader).
func newPoller() *poller {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil
	}
	p := &poller{epfd: epfd, conns: make(map[int32]*conn)}
	err = syscall.Pipe2(p.wake[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK)
	if err == nil {
		err = syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p.wake[0],
			&syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(p.wake[0])})
	}
	if err != nil {
		syscall.Close(epfd)
		return nil
	}
	go p.run()
	return p
}

// run hands every connection that became readable back to a reader.
func (p *poller) run() {
	events := make([]syscall.EpollEvent, 128)
	for {
		n, err := syscall.EpollWait(p.epfd, events, -1)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			p.close()
			return
		}
		for _, ev := range events[:n] {
			if int(ev.Fd) == p.wake[0] {
				p.close()
				return
			}
			p.mu.Lock()
			c := p.conns[ev.Fd]
			p.mu.Unlock()
			if c != nil {
				c.unpark()
			}
		}
	}
}

// stop ends run; connections no longer park.
func (p *poller) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.stopped {
		p.stopped = true
		syscall.Write(p.wake[1], []byte{0})
	}
}

func (p *poller) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	syscall.Close(p.epfd)
	syscall.Close(p.wake[0])
	syscall.Close(p.wake[1])
}

// park hands c to the poller if its socket has nothing to read, and
// reports whether it did; the caller's goroutine must then stop reading.
// c.mu is held while c is registered, so that unpark (from the poller or
// a close) runs only once the connection is parked.
func (p *poller) park(c *conn) bool {
	if c.raw == nil {
		return false
	}
	parked := false
	c.raw.Read(func(fd uintptr) bool { // the descriptor stays open while this runs
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		if !errors.Is(err, syscall.EAGAIN) {
			return true // bytes, the end or an error: the reader sees them
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.closed || !p.watch(c, int32(fd)) {
			return true
		}
		c.parked = true
		parked = true
		return true
	})
	return parked
}

// watch registers fd for one wake-up (EPOLLONESHOT) on bytes or the end.
func (p *poller) watch(c *conn, fd int32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return false
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: fd}
	err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, int(fd), &ev)
	if errors.Is(err, syscall.ENOENT) { // watched for the first time
		err = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
	}
	if err != nil {
		return false
	}
	p.conns[fd] = c
	c.pollFD = fd
	return true
}

// forget drops a connection that is done; the kernel forgot its descriptor
// when it was closed.
func (p *poller) forget(c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns[c.pollFD] == c {
		delete(p.conns, c.pollFD)
	}
}
