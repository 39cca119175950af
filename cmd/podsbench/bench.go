package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
)

// benchmark sets up the pods, sends the load, waits for the deliveries and
// returns the figures.
func benchmark(ctx context.Context, opts options) (*result, error) {
	load := opts.load
	runID := newRunID()
	clk := clock{base: time.Now()}
	fmt.Fprintf(os.Stderr, "run %s: %d pods × %d members, %g msg/s for %s, %s\n",
		runID, load.pods, membersPerPod, load.rate, load.duration, protocolName(opts.http1))

	streamCtx, stopStreams := context.WithCancel(ctx)
	defer stopStreams()
	var progress setupProgress
	began := time.Now()
	stopProgress := every(time.Second, func() string {
		return fmt.Sprintf("setup %4.0fs: users %d/%d, pods %d/%d, streams %d/%d", time.Since(began).Seconds(),
			progress.users.Load(), load.pods*membersPerPod, progress.pods.Load(), load.pods,
			progress.streams.Load(), load.pods*membersPerPod)
	})
	pods, err := setUp(ctx, streamCtx, opts, runID, &progress)
	stopProgress()
	if err != nil {
		return nil, err
	}
	setupTime := time.Since(began)
	fmt.Fprintf(os.Stderr, "setup done in %s\n", setupTime.Round(time.Millisecond))

	s := newSends(runID, int(load.rate*load.duration.Seconds()))
	var c counters
	var listeners sync.WaitGroup
	for _, p := range pods {
		for _, m := range p.members {
			listeners.Go(func() { m.listen(streamCtx, clk, s, &c, opts.timeout) })
		}
	}

	before := sampleResources(opts.pid)
	phaseStart := clk.now()
	stopProgress = every(time.Second, func() string {
		return fmt.Sprintf("load %4.0fs: sent %d, errors %d, delivered %d",
			time.Duration(clk.now()-phaseStart).Seconds(), c.sent.Load(), c.failed.Load(), c.delivered.Load())
	})
	jobs := make(chan job, len(s.pod))
	go schedule(ctx, pods, load.rate, s, jobs)
	sendAll(ctx, opts.senders, opts.timeout, clk, s, &c, jobs)
	sendEnd := clk.now()
	drain(ctx, &c, opts.drain)
	stopProgress()
	after := sampleResources(opts.pid)
	stopStreams()
	listeners.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	res := analyze(pods, s, phaseStart, sendEnd)
	res.Scenario, res.Protocol = opts.name, protocolName(opts.http1)
	res.Pods, res.Streams, res.Rate, res.DurationS = load.pods, load.pods*membersPerPod, load.rate, load.duration.Seconds()
	res.SetupS = round3(setupTime.Seconds())
	res.addResources(opts.pid, before, after)
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
func drain(ctx context.Context, c *counters, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if c.delivered.Load() >= (c.sent.Load()-c.failed.Load())*membersPerPod {
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
// is known, by the server and its descendants.
type resources struct {
	wall   time.Time
	bench  time.Duration
	server cpuSample
	err    error // reading the server's figures
}

func sampleResources(pid int) resources {
	r := resources{wall: time.Now()}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		r.bench = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if pid > 0 {
		r.server, r.err = sampleCPU(pid)
	}
	return r
}
