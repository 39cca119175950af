package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// fleet is a run's pods and members, and their streams once open.
type fleet struct {
	opts      options
	runID     string
	pods      []*pod
	members   []*member
	setupTime time.Duration
	// phase is the phase being measured; nil between phases.
	phase  atomic.Pointer[sends]
	phases int // phases so far, which give their messages distinct keys

	stopStreams context.CancelFunc // nil while the streams are closed
	listeners   sync.WaitGroup
}

// newFleet signs up the members and creates the pods.
func newFleet(ctx context.Context, opts options) (*fleet, error) {
	f := &fleet{opts: opts, runID: newRunID()}
	n := opts.load.pods * membersPerPod
	fmt.Fprintf(os.Stderr, "run %s: %d pods × %d members, %s over %d connections\n",
		f.runID, opts.load.pods, membersPerPod, protocolName(opts.http1), opts.conns)
	var progress setupProgress
	began := time.Now()
	stopProgress := every(time.Second, func() string {
		return fmt.Sprintf("setup %4.0fs: users %d/%d, pods %d/%d", time.Since(began).Seconds(),
			progress.users.Load(), n, progress.pods.Load(), opts.load.pods)
	})
	pods, err := setUp(ctx, opts, f.runID, &f.phase, &progress)
	stopProgress()
	if err != nil {
		return nil, err
	}
	f.pods = pods
	for _, p := range pods {
		f.members = append(f.members, p.members...)
	}
	f.setupTime = time.Since(began)
	fmt.Fprintf(os.Stderr, "setup done in %s\n", f.setupTime.Round(time.Millisecond))
	return f, nil
}

// open subscribes every member and has a goroutine read each stream until
// close.
func (f *fleet) open(ctx context.Context) error {
	streamCtx, stop := context.WithCancel(ctx)
	var progress setupProgress
	began := time.Now()
	stopProgress := every(time.Second, func() string {
		return fmt.Sprintf("subscribing %4.0fs: streams %d/%d", time.Since(began).Seconds(), progress.streams.Load(), len(f.members))
	})
	err := openStreams(ctx, streamCtx, f.opts, f.members, &progress)
	stopProgress()
	if err != nil {
		stop()
		return err
	}
	f.stopStreams = stop
	for _, m := range f.members {
		f.listeners.Go(func() { m.listen(streamCtx, f.opts.timeout) })
	}
	return nil
}

// close ends every stream and waits until their goroutines are done.
func (f *fleet) close() {
	if f.stopStreams != nil {
		f.stopStreams()
		f.listeners.Wait()
		f.stopStreams = nil
	}
}

// startPhase makes a record of n messages the current phase.
func (f *fleet) startPhase(n int) *sends {
	f.phases++
	s := newSends(fmt.Sprintf("%sp%d", f.runID, f.phases), n)
	f.phase.Store(s)
	return s
}

// endPhase stops recording and returns what every stream saw during the
// phase, by pod and member.
func (f *fleet) endPhase() [][]streamLog {
	f.phase.Store(nil)
	logs := make([][]streamLog, len(f.pods))
	for i, p := range f.pods {
		for _, m := range p.members {
			logs[i] = append(logs[i], m.takeLog())
		}
	}
	return logs
}

// run sends rate messages per second for d on the open streams, waits for
// the deliveries and returns the figures.
func (f *fleet) run(ctx context.Context, rate float64, d time.Duration) (*result, error) {
	s := f.startPhase(int(rate * d.Seconds()))
	before := sampleResources(f.opts.pid, f.opts.url)
	phaseStart := clk.now()
	stopProgress := every(time.Second, func() string {
		return fmt.Sprintf("load %4.0fs: sent %d, errors %d, delivered %d",
			time.Duration(clk.now()-phaseStart).Seconds(), s.sent.Load(), s.failed.Load(), s.delivered.Load())
	})
	jobs := make(chan job, len(s.pod))
	go schedule(ctx, f.pods, rate, s, jobs)
	sendAll(ctx, f.opts.senders, f.opts.timeout, s, jobs)
	sendEnd := clk.now()
	if f.opts.slowSends > 0 {
		printSlowSends(os.Stderr, s, f.opts.slowSends)
	}
	drain(ctx, s, f.opts.drain)
	stopProgress()
	after := sampleResources(f.opts.pid, f.opts.url)
	logs := f.endPhase()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res := analyze(logs, s, phaseStart, sendEnd)
	res.Protocol = protocolName(f.opts.http1)
	res.Pods, res.Streams, res.Rate, res.DurationS = len(f.pods), len(f.members), rate, d.Seconds()
	res.SetupS = round3(f.setupTime.Seconds())
	res.add(f.opts.pid, before, after)
	return res, nil
}

// latency runs seed, mid and high: the pods and streams, then one phase of
// load.
func latency(ctx context.Context, opts options) (*result, error) {
	f, err := newFleet(ctx, opts)
	if err != nil {
		return nil, err
	}
	if err := f.open(ctx); err != nil {
		return nil, err
	}
	defer f.close()
	fmt.Fprintf(os.Stderr, "sending %g msg/s for %s\n", opts.load.rate, opts.load.duration)
	res, err := f.run(ctx, opts.load.rate, opts.load.duration)
	if err != nil {
		return nil, err
	}
	res.Scenario, res.ChangeSource = opts.name, opts.changeSource
	return res, nil
}

func protocolName(http1 bool) string {
	if http1 {
		return "http1.1"
	}
	return "h2c"
}

// drain waits until every successfully sent message has reached every
// member of its pod, or for at most d.
func drain(ctx context.Context, s *sends, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if s.delivered.Load() >= (s.sent.Load()-s.failed.Load())*membersPerPod {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// every prints line() to stderr every interval until stop is called, and
// once more then.
func every(interval time.Duration, line func() string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		for {
			select {
			case <-done:
				fmt.Fprintln(os.Stderr, line())
				return
			case <-ticker.C:
				fmt.Fprintln(os.Stderr, line())
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// resources is a sample of the CPU time used by podsbench and, if its pid
// is known, by the server and its descendants, and of how long the
// server's goroutines waited for a CPU.
type resources struct {
	wall   time.Time
	bench  time.Duration
	server cpuSample
	err    error // reading the server's figures
	waits  cpuWaits
}

func sampleResources(pid int, url string) resources {
	r := resources{wall: time.Now()}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		r.bench = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if pid > 0 {
		r.server, r.err = sampleCPU(pid)
	}
	r.waits, _ = scrapeCPUWaits(url) // a server without the histogram reports none
	return r
}
