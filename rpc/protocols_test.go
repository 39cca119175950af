package rpc_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/pods-dev/pods/rpc"
	podsv1 "github.com/pods-dev/pods/rpc/gen/pods/v1"
)

// Every procedure answers Connect (binary and JSON), gRPC and gRPC-Web over
// cleartext HTTP/2, and all but gRPC (which needs HTTP/2) over HTTP/1.1, as
// the clients of API.md (generated mobile clients, grpcurl, browsers, curl)
// use them: a user signs up, subscribes, sends a message and sees it on the
// stream; errors keep their codes, also one that ends a stream after
// events (gRPC's trailers).
func TestEveryProtocolOverEveryTransport(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	http1 := new(http.Protocols)
	http1.SetHTTP1(true)
	transports := []struct {
		name      string
		protocols *http.Protocols
	}{{"h2c", h2cOnly()}, {"HTTP/1.1", http1}}
	protocols := []struct {
		name  string
		opts  []connect.ClientOption
		http2 bool // needs HTTP/2
	}{
		{"Connect", nil, false},
		{"Connect JSON", []connect.ClientOption{connect.WithProtoJSON()}, false},
		{"gRPC", []connect.ClientOption{connect.WithGRPC()}, true},
		{"gRPC-Web", []connect.ClientOption{connect.WithGRPCWeb()}, false},
	}
	for _, tr := range transports {
		for _, pr := range protocols {
			if pr.http2 && tr.name != "h2c" {
				continue
			}
			t.Run(pr.name+" over "+tr.name, func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				c := e.anonymousOver(tr.protocols, pr.opts...)
				signedUp, err := c.Auth.SignUp(ctx, connect.NewRequest(&podsv1.SignUpRequest{
					Handle: fmt.Sprintf("proto%d", userCount.Add(1)), Password: "correct horse", DisplayName: pr.name, Timezone: "Asia/Tokyo",
				}))
				if err != nil {
					t.Fatalf("sign up: %v", err)
				}
				c.token, c.user = signedUp.Msg.Token, signedUp.Msg.User
				created, err := c.Pod.CreatePod(ctx, connect.NewRequest(&podsv1.CreatePodRequest{Name: "Protocols", Habit: "all of them"}))
				if err != nil {
					t.Fatalf("create pod: %v", err)
				}
				pod := created.Msg.Pod

				s := e.subscribe(c, nil)
				if r := s.ready(); len(r.Pods) != 1 || r.Pods[0].Pod.Id != pod.Id {
					t.Fatalf("ready has %v, want the pod", r.Pods)
				}
				body := "sent with " + pr.name + " over " + tr.name
				if _, err := c.Chat.SendMessage(ctx, connect.NewRequest(&podsv1.SendMessageRequest{PodId: pod.Id, IdempotencyKey: "k1", Body: body})); err != nil {
					t.Fatalf("send: %v", err)
				}
				for {
					if m := s.nextLogged().GetMessageCreated().GetMessage(); m != nil && m.Body == body {
						break
					}
				}

				_, err = c.Chat.SendMessage(ctx, connect.NewRequest(&podsv1.SendMessageRequest{PodId: pod.Id, IdempotencyKey: "k2", Body: " "}))
				if code := connect.CodeOf(err); code != connect.CodeInvalidArgument {
					t.Fatalf("an empty message: %v (%v), want invalid_argument", err, code)
				}
				stranger := e.anonymousOver(tr.protocols, pr.opts...)
				stranger.token = "not a token"
				if err := e.subscribeErr(stranger, nil); connect.CodeOf(err) != connect.CodeUnauthenticated {
					t.Fatalf("a stream with a bad token: %v, want unauthenticated", err)
				}

				// Logging out ends the open stream, which has sent events,
				// with unauthenticated.
				if _, err := c.Auth.LogOut(ctx, connect.NewRequest(&podsv1.LogOutRequest{})); err != nil {
					t.Fatalf("log out: %v", err)
				}
				select {
				case err := <-s.err:
					s.err <- err
					if connect.CodeOf(err) != connect.CodeUnauthenticated {
						t.Fatalf("the stream ended with %v, want unauthenticated", err)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("the stream outlived its session by 10 s")
				}
				var ce *connect.Error
				if err := <-s.err; !errors.As(err, &ce) || ce.Message() == "" {
					t.Fatalf("the stream's error %v has no message", err)
				}
			})
		}
	}
}
