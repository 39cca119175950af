//go:build !linux

package h2c

// poller needs Linux's epoll; elsewhere every connection keeps its reader.
type poller struct{}

func newPoller() *poller { return nil }

func (p *poller) park(c *conn) bool { return false }

func (p *poller) forget(c *conn) {}

func (p *poller) stop() {}
