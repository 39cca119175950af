package main

import (
	"context"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	podsv1 "github.com/pods-dev/pods/rpc/gen/pods/v1"
)

// clock gives timestamps as monotonic nanoseconds since podsbench started,
// so that they fit an atomic int64.
type clock struct{ base time.Time }

func (c clock) now() int64 { return int64(time.Since(c.base)) }

// sends is the record of every message of the run, preallocated and
// indexed by the message's number, which its idempotency key carries.
type sends struct {
	keyPrefix string
	pod       []int32        // the pod's index; set before the send
	start     []atomic.Int64 // clock time just before SendMessage; 0 = not sent
	end       []int64        // clock time SendMessage returned; read after the senders are done
	err       []error        // its error; read after the senders are done
}

func newSends(runID string, n int) *sends {
	return &sends{
		keyPrefix: runID + "-",
		pod:       make([]int32, n),
		start:     make([]atomic.Int64, n),
		end:       make([]int64, n),
		err:       make([]error, n),
	}
}

// key is the idempotency key of message i.
func (s *sends) key(i int) string { return s.keyPrefix + strconv.Itoa(i) }

// index returns the number of the message with this key, if it is one of
// the run's.
func (s *sends) index(key string) (int, bool) {
	rest, ok := strings.CutPrefix(key, s.keyPrefix)
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(rest)
	return i, err == nil && i >= 0 && i < len(s.pod)
}

// delivery is one messageCreated event on one stream.
type delivery struct {
	msg int32 // the message's number
	at  int64 // clock time it arrived
}

// streamLog is what one member's stream saw. Only the stream's goroutine
// writes it; it is read after that goroutine ended.
type streamLog struct {
	deliveries []delivery
	lastSeq    int64 // the cursor to resume from
	reconnects int
	errs       []string // why the stream ended, each time it did
}

// counters are the live totals shown in the progress line.
type counters struct {
	sent, failed, delivered atomic.Int64
}

// listen reads m's stream until ctx ends, resubscribing from its cursor
// when the stream ends early.
func (m *member) listen(ctx context.Context, clk clock, s *sends, c *counters, timeout time.Duration) {
	for {
		m.read(clk, s, c)
		err := m.stream.Err()
		m.stream.Close()
		m.cancelStream()
		if ctx.Err() != nil {
			return
		}
		m.log.reconnects++
		m.log.errs = append(m.log.errs, errString(err))
		for m.subscribe(ctx, timeout) != nil {
			if ctx.Err() != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// errString is err's code or message, for counting stream ends by cause.
func errString(err error) string {
	if err == nil {
		return "ended"
	}
	if code := connect.CodeOf(err); code != connect.CodeUnknown {
		return code.String()
	}
	return err.Error()
}

// read records every messageCreated event of the run until the stream ends.
func (m *member) read(clk clock, s *sends, c *counters) {
	for m.stream.Receive() {
		at := clk.now()
		ev := m.stream.Msg().GetEvent()
		if ev.GetPodId() == m.pod.id && ev.GetSeq() > 0 {
			m.log.lastSeq = ev.GetSeq()
		}
		msg := ev.GetMessageCreated().GetMessage()
		if msg == nil {
			continue
		}
		if i, ok := s.index(msg.GetIdempotencyKey()); ok {
			m.log.deliveries = append(m.log.deliveries, delivery{msg: int32(i), at: at})
			c.delivered.Add(1)
		}
	}
}

// job is one message to send.
type job struct {
	i int
	m *member
}

// schedule hands out the run's messages at rate per second, each from a
// random member of a random pod, and closes jobs when all are out or ctx
// ends. jobs must hold them all, so that busy senders never hold it up.
func schedule(ctx context.Context, pods []*pod, rate float64, s *sends, jobs chan<- job) {
	defer close(jobs)
	ticker := time.NewTicker(time.Millisecond)
	defer ticker.Stop()
	began := time.Now()
	next := 0
	for next < len(s.pod) {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		due := min(len(s.pod), int(time.Since(began).Seconds()*rate)+1)
		for ; next < due; next++ {
			p := rand.IntN(len(pods))
			s.pod[next] = int32(p)
			jobs <- job{i: next, m: pods[p].members[rand.IntN(len(pods[p].members))]}
		}
	}
}

// sendAll runs senders goroutines that send the jobs until there are no
// more.
func sendAll(ctx context.Context, senders int, timeout time.Duration, clk clock, s *sends, c *counters, jobs <-chan job) {
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			for j := range jobs {
				j.m.send(ctx, timeout, clk, s, c, j.i)
			}
		})
	}
	wg.Wait()
}

// send posts message i from m and records when it started and ended.
func (m *member) send(ctx context.Context, timeout time.Duration, clk clock, s *sends, c *counters, i int) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req := authed(m, &podsv1.SendMessageRequest{
		PodId: m.pod.id, IdempotencyKey: s.key(i), Body: "benchmark message " + strconv.Itoa(i),
	})
	s.start[i].Store(clk.now())
	_, err := m.chat.SendMessage(ctx, req)
	s.end[i] = clk.now()
	s.err[i] = err
	c.sent.Add(1)
	if err != nil {
		c.failed.Add(1)
	}
}
