package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// idleResult is the figures of the idle scenario.
type idleResult struct {
	Scenario     string  `json:"scenario"`
	ChangeSource string  `json:"change_source,omitempty"`
	Protocol     string  `json:"protocol"`
	Streams      int     `json:"streams"`
	Conns        int     `json:"conns"`
	SetupS       float64 `json:"setup_s"`
	// Restarted says the server was restarted after setup, so that the
	// baseline is a fresh process.
	Restarted    bool    `json:"server_restarted"`
	OpenS        float64 `json:"open_s"` // until every stream got ready
	SettleS      float64 `json:"settle_s"`
	RSSBeforeMiB float64 `json:"rss_before_mib"`
	RSSAfterMiB  float64 `json:"rss_after_mib"`
	KiBPerStream float64 `json:"kib_per_stream"`
	Reconnects   int     `json:"reconnects"`
}

// idle runs the idle scenario: the server's RSS before the streams open and
// after, with the streams only listening. srv, if not nil, is restarted
// after setup.
func idle(ctx context.Context, opts options, srv *server) (*idleResult, error) {
	if opts.pid == 0 {
		return nil, errors.New("the idle scenario reads the server's RSS: pass --pid with --url")
	}
	f, err := newFleet(ctx, opts)
	if err != nil {
		return nil, err
	}
	r := &idleResult{
		Scenario: opts.name, ChangeSource: opts.changeSource, Protocol: protocolName(opts.http1),
		Streams: len(f.members), Conns: opts.conns, SetupS: round3(f.setupTime.Seconds()), SettleS: opts.settle.Seconds(),
	}
	if srv != nil {
		fmt.Fprintln(os.Stderr, "restarting podsd, so that setup's connections and garbage do not count")
		if err := srv.restart(ctx); err != nil {
			return nil, err
		}
		f.opts.pid, r.Restarted = srv.pid(), true
	}
	// Every stream comes on a new connection, which it pays for unless
	// connections are shared.
	for _, m := range f.members {
		m.http.CloseIdleConnections()
	}
	before, err := settledRSS(ctx, f.opts.pid, opts.settle)
	if err != nil {
		return nil, err
	}
	began := time.Now()
	if err := f.open(ctx); err != nil {
		return nil, err
	}
	defer f.close()
	r.OpenS = round3(time.Since(began).Seconds())
	after, err := settledRSS(ctx, f.opts.pid, opts.settle)
	if err != nil {
		return nil, err
	}
	for _, pod := range f.endPhase() {
		for _, l := range pod {
			r.Reconnects += l.reconnects
		}
	}
	r.RSSBeforeMiB, r.RSSAfterMiB = round3(float64(before)/(1<<20)), round3(float64(after)/(1<<20))
	r.KiBPerStream = round3(float64(after-before) / 1024 / float64(r.Streams))
	return r, nil
}

// settledRSS waits for d, then returns pid's RSS.
func settledRSS(ctx context.Context, pid int, d time.Duration) (int64, error) {
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(d):
	}
	return memStatus(pid, "VmRSS")
}

func (r *idleResult) print(w io.Writer) {
	restarted := ""
	if r.Restarted {
		restarted = ", then podsd restarted"
	}
	tw, row := table(w)
	row("scenario", "%s (%s%s): %d streams over %d connections", r.Scenario, r.Protocol, sourceNote(r.ChangeSource), r.Streams, r.Conns)
	row("setup", "%.1f s%s", r.SetupS, restarted)
	row("opening", "%.1f s until every stream got ready; %d reconnects since", r.OpenS, r.Reconnects)
	row("podsd RSS", "%.1f MiB before, %.1f MiB with the streams open (each read after %g s of quiet)", r.RSSBeforeMiB, r.RSSAfterMiB, r.SettleS)
	row("per open stream", "%.1f KiB", r.KiBPerStream)
	tw.Flush()
}
