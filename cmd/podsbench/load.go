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

// clk is the run's clock: every timestamp podsbench records comes from it.
var clk = clock{base: time.Now()}

// sends is the record of one phase's messages, preallocated and indexed by
// the message's number, which its idempotency key carries, with the
// phase's live totals.
type sends struct {
	keyPrefix string
	pod       []int32        // the pod's index; set before the send
	start     []atomic.Int64 // clock time just before SendMessage; 0 = not sent
	end       []int64        // clock time SendMessage returned; read after the senders are done
	err       []error        // its error; read after the senders are done
	counters
}

// counters are a phase's live totals, for the progress line and to tell
// when everything has arrived.
type counters struct {
	sent, failed atomic.Int64
	delivered    atomic.Int64 // messages of the phase new to the stream that got them
	ready        atomic.Int64 // streams that got their first ready of the phase
}

// newSends returns the record of n messages whose keys start with prefix.
func newSends(prefix string, n int) *sends {
	return &sends{
		keyPrefix: prefix + "-",
		pod:       make([]int32, n),
		start:     make([]atomic.Int64, n),
		end:       make([]int64, n),
		err:       make([]error, n),
	}
}

// key is the idempotency key of message i.
func (s *sends) key(i int) string { return s.keyPrefix + strconv.Itoa(i) }

// index returns the number of the message with this key, if it is one of
// the phase's.
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

// streamLog is what one member's stream saw during a phase.
type streamLog struct {
	deliveries []delivery
	readyAt    int64    // clock time of the phase's first ready; 0 = none
	reconnects int      // times the stream ended early
	failures   int      // subscribe attempts that failed
	errs       []string // why the stream ended or an attempt failed, each time
}

// listen reads m's stream until ctx ends, resubscribing from its cursor
// whenever the stream ends early, as a real client would.
func (m *member) listen(ctx context.Context, timeout time.Duration) {
	for {
		m.read()
		err := m.stream.Err()
		m.stream.Close()
		m.cancelStream()
		if ctx.Err() != nil {
			return
		}
		m.note(&m.log.reconnects, err)
		if !m.resubscribe(ctx, timeout) {
			return
		}
	}
}

// resubscribe tries to subscribe every 100 ms until it succeeds or ctx
// ends, and reports whether it succeeded.
func (m *member) resubscribe(ctx context.Context, timeout time.Duration) bool {
	for {
		err := m.subscribe(ctx, timeout)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		m.note(&m.log.failures, err)
		time.Sleep(100 * time.Millisecond)
	}
}

// note counts a stream end or a failed attempt, with its cause.
func (m *member) note(count *int, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	*count++
	m.log.errs = append(m.log.errs, errString(err))
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

// read moves m's cursor and records the current phase's messageCreated
// events until the stream ends.
func (m *member) read() {
	for m.stream.Receive() {
		at := clk.now()
		ev := m.stream.Msg().GetEvent()
		fresh := ev.GetPodId() == m.pod.id && ev.GetSeq() > m.cursor
		if fresh {
			m.cursor = ev.GetSeq()
		}
		key := ev.GetMessageCreated().GetMessage().GetIdempotencyKey()
		if key == "" {
			continue
		}
		// The phase is looked up under the lock that takeLog takes, so a
		// delivery never lands in the log of a phase it is not part of.
		m.mu.Lock()
		if s := m.phase.Load(); s != nil {
			if i, ok := s.index(key); ok {
				m.log.deliveries = append(m.log.deliveries, delivery{msg: int32(i), at: at})
				if fresh {
					s.delivered.Add(1)
				}
			}
		}
		m.mu.Unlock()
	}
}

// takeLog returns what m's stream saw since the last call and starts a new
// log.
func (m *member) takeLog() streamLog {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.log
	m.log = streamLog{}
	return l
}

// job is one message to send.
type job struct {
	i int
	m *member
}

// schedule hands out the phase's messages at rate per second, each from a
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
			jobs <- randomJob(pods, s, next)
		}
	}
}

// randomJob is message i from a random member of a random pod.
func randomJob(pods []*pod, s *sends, i int) job {
	p := rand.IntN(len(pods))
	s.pod[i] = int32(p)
	return job{i: i, m: pods[p].members[rand.IntN(len(pods[p].members))]}
}

// sendAll runs senders goroutines that send the jobs until there are no
// more.
func sendAll(ctx context.Context, senders int, timeout time.Duration, s *sends, jobs <-chan job) {
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			for j := range jobs {
				j.m.send(ctx, timeout, s, j.i)
			}
		})
	}
	wg.Wait()
}

// send posts message i from m and records when it started and ended.
func (m *member) send(ctx context.Context, timeout time.Duration, s *sends, i int) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req := authed(m, &podsv1.SendMessageRequest{
		PodId: m.pod.id, IdempotencyKey: s.key(i), Body: "benchmark message " + strconv.Itoa(i),
	})
	s.start[i].Store(clk.now())
	_, err := m.chat.SendMessage(ctx, req)
	s.end[i] = clk.now()
	s.err[i] = err
	s.sent.Add(1)
	if err != nil {
		s.failed.Add(1)
	}
}
