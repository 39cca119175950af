package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	podsv1 "github.com/pods-dev/pods/rpc/gen/pods/v1"
	"github.com/pods-dev/pods/rpc/gen/pods/v1/podsv1connect"
)

// pod is one benchmark pod.
type pod struct {
	id      string
	members []*member
}

// member is one user with its stream.
type member struct {
	handle   string
	token    string
	pod      *pod
	http     *http.Client // shared with other members when connections are pooled
	chat     podsv1connect.ChatServiceClient
	realtime podsv1connect.RealtimeServiceClient
	auth     podsv1connect.AuthServiceClient
	pods     podsv1connect.PodServiceClient
	// phase is where the stream's deliveries are recorded: the run's
	// current phase, if any.
	phase *atomic.Pointer[sends]

	// Owned by the stream's goroutine.
	stream *connect.ServerStreamForClient[podsv1.SubscribeResponse]
	// cancelStream ends the stream; subscribe cancels it if ready takes too long.
	cancelStream context.CancelFunc
	cursor       int64 // the last seq of its pod the stream got

	mu  sync.Mutex
	log streamLog // guarded by mu
}

// setupProgress counts what setup has done so far.
type setupProgress struct {
	users, pods, streams atomic.Int64
}

// newRunID returns a short random id that makes handles unique per run.
func newRunID() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newHTTPClients returns n HTTP clients, each with its own transport, so
// its own connection: h2c, which carries all of a client's calls at once
// (up to the server's limit of concurrent streams, past which the
// transport opens another), unless http1.
func newHTTPClients(opts options, n int) []*http.Client {
	clients := make([]*http.Client, n)
	for i := range clients {
		protocols := new(http.Protocols)
		if opts.http1 {
			protocols.SetHTTP1(true)
		} else {
			// HTTP/2 only: with HTTP/1 enabled too, Go would speak HTTP/1.1.
			protocols.SetUnencryptedHTTP2(true)
		}
		clients[i] = &http.Client{Transport: &http.Transport{
			Protocols:   protocols,
			DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		}}
	}
	return clients
}

// newMember returns a member calling the server through client.
func newMember(opts options, handle string, client *http.Client, phase *atomic.Pointer[sends]) *member {
	var clientOpts []connect.ClientOption
	if !opts.gzip {
		clientOpts = append(clientOpts, connect.WithAcceptCompression("gzip", nil, nil))
	}
	return &member{
		handle:   handle,
		http:     client,
		phase:    phase,
		chat:     podsv1connect.NewChatServiceClient(client, opts.url, clientOpts...),
		realtime: podsv1connect.NewRealtimeServiceClient(client, opts.url, clientOpts...),
		auth:     podsv1connect.NewAuthServiceClient(client, opts.url, clientOpts...),
		pods:     podsv1connect.NewPodServiceClient(client, opts.url, clientOpts...),
	}
}

// authed wraps msg in a request carrying the member's token.
func authed[T any](m *member, msg *T) *connect.Request[T] {
	req := connect.NewRequest(msg)
	req.Header().Set("Authorization", "Bearer "+m.token)
	return req
}

// parallel calls f for 0 ≤ i < n on workers goroutines. It starts no more
// calls after one fails, and returns that call's error.
func parallel(ctx context.Context, n, workers int, f func(ctx context.Context, i int) error) error {
	inner, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan int)
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for i := range jobs {
				if err := f(inner, i); err != nil {
					once.Do(func() { first = err; cancel() })
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case jobs <- i:
		case <-inner.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// setUp creates the pods and their members, opts.setupWorkers pods at a
// time, the members calling through opts.conns shared connections.
func setUp(ctx context.Context, opts options, runID string, phase *atomic.Pointer[sends], progress *setupProgress) ([]*pod, error) {
	pods := make([]*pod, opts.load.pods)
	clients := newHTTPClients(opts, opts.conns)
	err := parallel(ctx, len(pods), opts.setupWorkers, func(ctx context.Context, i int) error {
		p := &pod{}
		for j := range membersPerPod {
			n := i*membersPerPod + j
			m := newMember(opts, fmt.Sprintf("bench%su%d", runID, n), clients[n%len(clients)], phase)
			m.pod = p
			p.members = append(p.members, m)
		}
		if err := setUpPod(ctx, opts, p, fmt.Sprintf("%s-%d", runID, i), progress); err != nil {
			return fmt.Errorf("pod %d: %w", i, err)
		}
		pods[i] = p
		return nil
	})
	return pods, err
}

// setUpPod signs up a pod's members and has the first create the pod
// (with idempotency key key) and the others join it.
func setUpPod(ctx context.Context, opts options, p *pod, key string, progress *setupProgress) error {
	for _, m := range p.members {
		if err := retry(ctx, opts.timeout, m.signUp); err != nil {
			return fmt.Errorf("signing up %s: %w", m.handle, err)
		}
		progress.users.Add(1)
	}
	var invite string
	if err := retry(ctx, opts.timeout, func(ctx context.Context) (err error) {
		p.id, invite, err = p.members[0].createPod(ctx, key)
		return err
	}); err != nil {
		return fmt.Errorf("creating the pod: %w", err)
	}
	for _, m := range p.members[1:] {
		if err := retry(ctx, opts.timeout, func(ctx context.Context) error { return m.join(ctx, invite) }); err != nil {
			return fmt.Errorf("%s joining: %w", m.handle, err)
		}
	}
	progress.pods.Add(1)
	return nil
}

// openStreams subscribes every member, opts.setupWorkers at a time. The
// streams live until streamCtx ends.
func openStreams(ctx, streamCtx context.Context, opts options, members []*member, progress *setupProgress) error {
	return parallel(ctx, len(members), opts.setupWorkers, func(ctx context.Context, i int) error {
		m := members[i]
		if err := m.subscribe(streamCtx, opts.timeout); err != nil {
			return fmt.Errorf("subscribing %s: %w", m.handle, err)
		}
		progress.streams.Add(1)
		return nil
	})
}

// retry calls f with a timeout up to three times, while it fails with an
// error other than a client's mistake.
func retry(ctx context.Context, timeout time.Duration, f func(context.Context) error) error {
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
		}
		callCtx, cancel := context.WithTimeout(ctx, timeout)
		err = f(callCtx)
		cancel()
		switch connect.CodeOf(err) {
		case connect.CodeUnavailable, connect.CodeDeadlineExceeded, connect.CodeResourceExhausted, connect.CodeUnknown:
			if err != nil && ctx.Err() == nil {
				continue
			}
		}
		return err
	}
	return err
}

func (m *member) signUp(ctx context.Context) error {
	resp, err := m.auth.SignUp(ctx, connect.NewRequest(&podsv1.SignUpRequest{
		Handle: m.handle, Password: "benchmark-password", DisplayName: m.handle, Timezone: "UTC",
	}))
	if err != nil {
		return err
	}
	m.token = resp.Msg.Token
	return nil
}

// createPod creates a pod of capacity 6 (4–6 are allowed) and returns its
// id and invite code. key makes a retry return the same pod.
func (m *member) createPod(ctx context.Context, key string) (id, invite string, err error) {
	resp, err := m.pods.CreatePod(ctx, authed(m, &podsv1.CreatePodRequest{
		Name: "Bench " + key, Habit: "Benchmarking", Capacity: 6, IdempotencyKey: key,
	}))
	if err != nil {
		return "", "", err
	}
	return resp.Msg.Pod.Id, resp.Msg.Pod.InviteCode, nil
}

func (m *member) join(ctx context.Context, invite string) error {
	_, err := m.pods.JoinPod(ctx, authed(m, &podsv1.JoinPodRequest{InviteCode: invite}))
	return err
}

// subscribe opens the member's stream (resuming from its cursor, if it has
// one) for as long as ctx lasts, and waits up to timeout for the ready
// event, which it records if it is the phase's first.
func (m *member) subscribe(ctx context.Context, timeout time.Duration) error {
	req := &podsv1.SubscribeRequest{}
	if m.cursor > 0 {
		req.Cursors = map[string]int64{m.pod.id: m.cursor}
	}
	ctx, m.cancelStream = context.WithCancel(ctx)
	timer := time.AfterFunc(timeout, m.cancelStream)
	defer timer.Stop()
	stream, err := m.realtime.Subscribe(ctx, authed(m, req))
	if err != nil {
		return err
	}
	if !stream.Receive() {
		err := stream.Err()
		stream.Close()
		if err == nil {
			err = errors.New("stream ended before ready")
		}
		return err
	}
	at := clk.now()
	ready := stream.Msg().GetEvent().GetReady()
	if ready == nil {
		stream.Close()
		return fmt.Errorf("first event is %T, not ready", stream.Msg().GetEvent().GetKind())
	}
	if m.cursor == 0 {
		for _, s := range ready.Pods {
			if s.GetPod().GetId() == m.pod.id {
				m.cursor = s.LastSeq
			}
		}
	}
	m.mu.Lock()
	if s := m.phase.Load(); s != nil && m.log.readyAt == 0 {
		m.log.readyAt = at
		s.ready.Add(1)
	}
	m.mu.Unlock()
	m.stream = stream
	return nil
}
