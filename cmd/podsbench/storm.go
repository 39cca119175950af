package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"
)

// stormResult is the figures of the storm scenario.
type stormResult struct {
	Scenario     string  `json:"scenario"`
	ChangeSource string  `json:"change_source,omitempty"`
	Protocol     string  `json:"protocol"`
	Clients      int     `json:"clients"`
	Pods         int     `json:"pods"`
	Conns        int     `json:"conns"`
	SetupS       float64 `json:"setup_s"`
	// Messages were sent while every client was away, in SendS.
	Messages   int            `json:"messages"`
	SendS      float64        `json:"send_s"`
	SendErrors int            `json:"send_errors"`
	SendErrs   map[string]int `json:"send_errors_by_cause,omitempty"`
	catchUp
	usage
}

// catchUp is how the clients caught up after they all resubscribed.
type catchUp struct {
	Expected   int `json:"expected"` // every message sent, once on every stream of its pod
	Delivered  int `json:"delivered"`
	Lost       int `json:"lost"`
	Dups       int `json:"dups"`
	Unexpected int `json:"unexpected"`
	Ready      int `json:"ready"`     // clients that got ready
	CaughtUp   int `json:"caught_up"` // clients that got ready and every message of their pod
	// AllReadyS and AllCaughtUpS are the time from the resubscribe until
	// the last client got ready, and until it also had every message; 0
	// unless every client did.
	AllReadyS        float64        `json:"all_ready_s"`
	AllCaughtUpS     float64        `json:"all_caught_up_s"`
	CaughtUpP50S     float64        `json:"caught_up_p50_s"`
	CaughtUpP99S     float64        `json:"caught_up_p99_s"`
	Reconnects       int            `json:"reconnects"`
	FailedSubscribes int            `json:"failed_subscribes"`
	StreamEnds       map[string]int `json:"stream_ends_by_cause,omitempty"`
}

// storm runs the storm scenario: every stream closes, messages are sent,
// and every client resubscribes at once.
func storm(ctx context.Context, opts options) (*stormResult, error) {
	f, err := newFleet(ctx, opts)
	if err != nil {
		return nil, err
	}
	if err := f.open(ctx); err != nil {
		return nil, err
	}
	r := &stormResult{
		Scenario: opts.name, ChangeSource: opts.changeSource, Protocol: protocolName(opts.http1),
		Clients: len(f.members), Pods: len(f.pods), Conns: opts.conns, SetupS: round3(f.setupTime.Seconds()),
		SendErrs: map[string]int{},
	}
	// Every client goes away, keeping its cursor.
	f.close()
	s := f.startPhase(opts.load.messages)
	fmt.Fprintf(os.Stderr, "every stream closed; sending %d messages\n", len(s.pod))
	began := time.Now()
	jobs := make(chan job, len(s.pod))
	for i := range s.pod {
		jobs <- randomJob(f.pods, s, i)
	}
	close(jobs)
	sendAll(ctx, opts.senders, opts.timeout, s, jobs)
	r.SendS = round3(time.Since(began).Seconds())
	for i := range s.pod {
		if err := s.err[i]; err != nil {
			r.SendErrors++
			r.SendErrs[errString(err)]++
		}
	}
	r.Messages = len(s.pod) - r.SendErrors
	// They come back on new connections, as after a network failure.
	for _, m := range f.members {
		m.http.CloseIdleConnections()
	}

	fmt.Fprintf(os.Stderr, "%d clients resubscribing at once over %d connections\n", len(f.members), opts.conns)
	streamCtx, stopStreams := context.WithCancel(ctx)
	defer stopStreams()
	gate := make(chan struct{})
	var clients sync.WaitGroup
	for _, m := range f.members {
		clients.Go(func() {
			<-gate
			if m.resubscribe(streamCtx, opts.catchUpTimeout) {
				m.listen(streamCtx, opts.catchUpTimeout)
			}
		})
	}
	before := sampleResources(opts.pid, opts.url)
	start := clk.now()
	close(gate)
	want := int64(r.Messages * membersPerPod)
	stopProgress := every(time.Second, func() string {
		return fmt.Sprintf("storm %4.0fs: ready %d/%d, delivered %d/%d", time.Duration(clk.now()-start).Seconds(),
			s.ready.Load(), len(f.members), s.delivered.Load(), want)
	})
	deadline := time.Now().Add(opts.catchUpTimeout)
	for ctx.Err() == nil && time.Now().Before(deadline) &&
		(s.ready.Load() < int64(len(f.members)) || s.delivered.Load() < want) {
		time.Sleep(10 * time.Millisecond)
	}
	stopProgress()
	after := sampleResources(opts.pid, opts.url)
	logs := f.endPhase()
	stopStreams()
	clients.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.catchUp = analyzeStorm(logs, s, start)
	r.add(opts.pid, before, after)
	return r, nil
}

// analyzeStorm computes how the clients caught up from what their streams
// saw (by pod and member) since they resubscribed at start: a client has
// caught up when it got ready and every message of its pod sent without
// error.
func analyzeStorm(logs [][]streamLog, s *sends, start int64) catchUp {
	c := catchUp{StreamEnds: map[string]int{}}
	want := make([]int, len(logs)) // per pod, the messages it should get
	for i := range s.pod {
		if s.start[i].Load() != 0 && s.err[i] == nil {
			want[s.pod[i]]++
		}
	}
	var times []time.Duration // per client that caught up
	clients, lastReady := 0, start
	for pi, pod := range logs {
		for _, l := range pod {
			clients++
			c.Expected += want[pi]
			seen := make(map[int32]bool, len(l.deliveries))
			done := l.readyAt
			for _, d := range l.deliveries {
				switch {
				case seen[d.msg]:
					c.Dups++
				case s.err[d.msg] != nil || int(s.pod[d.msg]) != pi:
					c.Unexpected++
				default:
					seen[d.msg] = true
					done = max(done, d.at)
				}
			}
			c.Delivered += len(seen)
			c.Reconnects += l.reconnects
			c.FailedSubscribes += l.failures
			for _, e := range l.errs {
				c.StreamEnds[e]++
			}
			if l.readyAt == 0 {
				continue
			}
			c.Ready++
			lastReady = max(lastReady, l.readyAt)
			if len(seen) == want[pi] {
				c.CaughtUp++
				times = append(times, time.Duration(done-start))
			}
		}
	}
	c.Lost = c.Expected - c.Delivered
	slices.Sort(times)
	if c.Ready == clients {
		c.AllReadyS = round3(time.Duration(lastReady - start).Seconds())
	}
	if c.CaughtUp == clients {
		c.AllCaughtUpS = round3(percentile(times, 100).Seconds())
	}
	c.CaughtUpP50S, c.CaughtUpP99S = round3(percentile(times, 50).Seconds()), round3(percentile(times, 99).Seconds())
	return c
}

func (r *stormResult) print(w io.Writer) {
	tw, row := table(w)
	row("scenario", "%s (%s%s): %d clients in %d pods, sharing %d connections (≈%d streams each)",
		r.Scenario, r.Protocol, sourceNote(r.ChangeSource), r.Clients, r.Pods, r.Conns, (r.Clients+r.Conns-1)/r.Conns)
	row("setup", "%.1f s", r.SetupS)
	row("while away", "%d messages sent in %.1f s, %d errors%s", r.Messages, r.SendS, r.SendErrors, causes(r.SendErrs))
	row("ready", "%d of %d clients, all within %s", r.Ready, r.Clients, seconds(r.AllReadyS))
	row("caught up", "%d of %d clients, all within %s; p50 %.2f s, p99 %.2f s", r.CaughtUp, r.Clients, seconds(r.AllCaughtUpS), r.CaughtUpP50S, r.CaughtUpP99S)
	row("deliveries", "%d of %d expected", r.Delivered, r.Expected)
	row("lost / dups / unexpected", "%d / %d / %d", r.Lost, r.Dups, r.Unexpected)
	row("stream reconnects", "%d, %d failed attempts%s", r.Reconnects, r.FailedSubscribes, causes(r.StreamEnds))
	r.usage.print(row)
	tw.Flush()
}

// seconds formats a time in seconds, of which 0 means it never came.
func seconds(s float64) string {
	if s == 0 {
		return "- (not all did)"
	}
	return fmt.Sprintf("%.2f s", s)
}

func (r *stormResult) fault() error {
	if r.Ready < r.Clients || r.CaughtUp < r.Clients {
		return fmt.Errorf("guarantee broken: of %d clients %d got ready and %d caught up", r.Clients, r.Ready, r.CaughtUp)
	}
	return deliveryFault(r.Lost, r.Dups, r.Unexpected)
}
