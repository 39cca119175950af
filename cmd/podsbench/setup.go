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

// member is one user with its own connection and stream.
type member struct {
	handle   string
	token    string
	pod      *pod
	chat     podsv1connect.ChatServiceClient
	realtime podsv1connect.RealtimeServiceClient
	auth     podsv1connect.AuthServiceClient
	pods     podsv1connect.PodServiceClient
	stream   *connect.ServerStreamForClient[podsv1.SubscribeResponse] // open after setup
	// cancelStream ends the stream; subscribe cancels it if ready takes too long.
	cancelStream context.CancelFunc
	log          streamLog
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

// newMember returns a member with its own HTTP transport, so its own
// connection: h2c unless http1.
func newMember(opts options, handle string) *member {
	protocols := new(http.Protocols)
	if opts.http1 {
		protocols.SetHTTP1(true)
	} else {
		// HTTP/2 only: with HTTP/1 enabled too, Go would speak HTTP/1.1.
		protocols.SetUnencryptedHTTP2(true)
	}
	client := &http.Client{Transport: &http.Transport{
		Protocols:   protocols,
		DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
	}}
	var clientOpts []connect.ClientOption
	if !opts.gzip {
		clientOpts = append(clientOpts, connect.WithAcceptCompression("gzip", nil, nil))
	}
	return &member{
		handle:   handle,
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

// setUp creates the pods, their members and their streams, with
// opts.setupWorkers pods at a time. The streams live until streamCtx ends.
func setUp(ctx, streamCtx context.Context, opts options, runID string, progress *setupProgress) ([]*pod, error) {
	pods := make([]*pod, opts.load.pods)
	jobs := make(chan int)
	errs := make(chan error, opts.setupWorkers)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range opts.setupWorkers {
		wg.Go(func() {
			for i := range jobs {
				p, err := setUpPod(ctx, streamCtx, opts, runID, i, progress)
				if err != nil {
					errs <- fmt.Errorf("pod %d: %w", i, err)
					cancel()
					return
				}
				pods[i] = p
			}
		})
	}
	for i := range pods {
		select {
		case jobs <- i:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return pods, ctx.Err()
}

// setUpPod signs up a pod's members, has the first create the pod and the
// others join it, then opens every member's stream.
func setUpPod(ctx, streamCtx context.Context, opts options, runID string, i int, progress *setupProgress) (*pod, error) {
	p := &pod{}
	for j := range membersPerPod {
		m := newMember(opts, fmt.Sprintf("bench%su%d", runID, i*membersPerPod+j))
		m.pod = p
		if err := retry(ctx, opts.timeout, m.signUp); err != nil {
			return nil, fmt.Errorf("signing up %s: %w", m.handle, err)
		}
		progress.users.Add(1)
		p.members = append(p.members, m)
	}
	var invite string
	if err := retry(ctx, opts.timeout, func(ctx context.Context) (err error) {
		p.id, invite, err = p.members[0].createPod(ctx, fmt.Sprintf("%s-%d", runID, i))
		return err
	}); err != nil {
		return nil, fmt.Errorf("creating the pod: %w", err)
	}
	for _, m := range p.members[1:] {
		if err := retry(ctx, opts.timeout, func(ctx context.Context) error { return m.join(ctx, invite) }); err != nil {
			return nil, fmt.Errorf("%s joining: %w", m.handle, err)
		}
	}
	progress.pods.Add(1)
	for _, m := range p.members {
		if err := m.subscribe(streamCtx, opts.timeout); err != nil {
			return nil, fmt.Errorf("subscribing %s: %w", m.handle, err)
		}
		progress.streams.Add(1)
	}
	return p, nil
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
// one) for as long as ctx lasts, and waits up to timeout for the ready event.
func (m *member) subscribe(ctx context.Context, timeout time.Duration) error {
	req := &podsv1.SubscribeRequest{}
	if m.log.lastSeq > 0 {
		req.Cursors = map[string]int64{m.pod.id: m.log.lastSeq}
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
	ready := stream.Msg().GetEvent().GetReady()
	if ready == nil {
		stream.Close()
		return fmt.Errorf("first event is %T, not ready", stream.Msg().GetEvent().GetKind())
	}
	if m.log.lastSeq == 0 {
		for _, s := range ready.Pods {
			if s.GetPod().GetId() == m.pod.id {
				m.log.lastSeq = s.LastSeq
			}
		}
	}
	m.stream = stream
	return nil
}
