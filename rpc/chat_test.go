package rpc_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/pods-dev/pods/rpc"
	podsv1 "github.com/pods-dev/pods/rpc/gen/pods/v1"
)

func TestSendMessageIsIdempotentUnderConcurrency(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	author := e.signUp()
	pod := e.createPod(author, 4)

	// 50 retries of one send, each on its own connection, at once.
	req := &podsv1.SendMessageRequest{PodId: pod.Id, IdempotencyKey: "retry-me", Body: "I did it!", Humor: true}
	results := make([]*podsv1.Message, 50)
	errs := make([]error, 50)
	var wg sync.WaitGroup
	for i := range results {
		c := e.as(author)
		wg.Go(func() {
			res, err := c.Chat.SendMessage(context.Background(), connect.NewRequest(req))
			if err == nil {
				results[i] = res.Msg.Message
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if !proto.Equal(results[i], results[0]) {
			t.Fatalf("call %d returned %v, call 0 %v", i, results[i], results[0])
		}
	}
	if m := results[0]; m.Body != req.Body || !m.Humor || m.IdempotencyKey != req.IdempotencyKey || m.AuthorId != author.user.Id {
		t.Fatalf("stored %v", m)
	}
	if n := e.count(`SELECT count(*) FROM messages`); n != 1 {
		t.Fatalf("%d messages stored, want 1", n)
	}
	if n := e.count(`SELECT count(*) FROM events WHERE kind = 'message_created'`); n != 1 {
		t.Fatalf("%d message_created events, want 1", n)
	}
	// The sequence has no holes left by the refused duplicates.
	if n := e.count(`SELECT last_seq FROM pods`); n != e.count(`SELECT count(*) FROM events`) {
		t.Fatalf("last_seq %d but %d events", n, e.count(`SELECT count(*) FROM events`))
	}

	// The same key for something else is refused.
	for _, other := range []*podsv1.SendMessageRequest{
		{PodId: pod.Id, IdempotencyKey: "retry-me", Body: "something else"},
		{PodId: pod.Id, IdempotencyKey: "retry-me", Body: "I did it!", Humor: false},
	} {
		_, err := author.Chat.SendMessage(context.Background(), connect.NewRequest(other))
		wantCode(t, err, connect.CodeAlreadyExists)
	}
	// Keys are per author.
	member := e.signUp()
	e.join(member, pod)
	if m := e.send(member, pod.Id, "retry-me", "me too"); m.Id == results[0].Id {
		t.Fatal("another author's key matched")
	}
	// A retry later returns the message as it is then, reactions too
	// (found by review: they were missing).
	if _, err := member.Chat.AddReaction(context.Background(), connect.NewRequest(&podsv1.AddReactionRequest{MessageId: results[0].Id, Emoji: "🔥"})); err != nil {
		t.Fatal(err)
	}
	res, err := author.Chat.SendMessage(context.Background(), connect.NewRequest(req))
	if err != nil {
		t.Fatal(err)
	}
	if r := res.Msg.Message.Reactions; len(r) != 1 || r[0].Emoji != "🔥" || len(r[0].UserIds) != 1 || r[0].UserIds[0] != member.user.Id {
		t.Fatalf("a retry's message has reactions %v, want the fire", r)
	}
}

func TestSendMessageRefusesBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	author, stranger := e.signUp(), e.signUp()
	pod := e.createPod(author, 4)
	ok := func(r *podsv1.SendMessageRequest) *podsv1.SendMessageRequest {
		if r.PodId == "" {
			r.PodId = pod.Id
		}
		if r.IdempotencyKey == "" {
			r.IdempotencyKey = "key"
		}
		if r.Body == "" {
			r.Body = "hello"
		}
		return r
	}
	for name, tc := range map[string]struct {
		c    *client
		req  *podsv1.SendMessageRequest
		code connect.Code
	}{
		"blank body":      {author, ok(&podsv1.SendMessageRequest{Body: " \n\t "}), connect.CodeInvalidArgument},
		"invisible body":  {author, ok(&podsv1.SendMessageRequest{Body: "\u200b\u2060\ufeff \u3164\ufe0f\u034f"}), connect.CodeInvalidArgument},
		"control in body": {author, ok(&podsv1.SendMessageRequest{Body: "a\x01b"}), connect.CodeInvalidArgument},
		"bidi override":   {author, ok(&podsv1.SendMessageRequest{Body: "pay \u202etxt.exe"}), connect.CodeInvalidArgument},
		"long body":       {author, ok(&podsv1.SendMessageRequest{Body: strings.Repeat("é", 4001)}), connect.CodeInvalidArgument},
		"NUL in body":     {author, ok(&podsv1.SendMessageRequest{Body: "a\x00b"}), connect.CodeInvalidArgument},
		"no key":          {author, &podsv1.SendMessageRequest{PodId: pod.Id, Body: "x"}, connect.CodeInvalidArgument},
		"long key":        {author, ok(&podsv1.SendMessageRequest{IdempotencyKey: strings.Repeat("k", 65)}), connect.CodeInvalidArgument},
		"unprintable key": {author, ok(&podsv1.SendMessageRequest{IdempotencyKey: "a\x00b"}), connect.CodeInvalidArgument},
		"malformed pod":   {author, ok(&podsv1.SendMessageRequest{PodId: "pod-1"}), connect.CodeInvalidArgument},
		"unknown pod":     {author, ok(&podsv1.SendMessageRequest{PodId: "00000000-0000-0000-0000-000000000000"}), connect.CodeNotFound},
		"not a member":    {stranger, ok(&podsv1.SendMessageRequest{}), connect.CodeNotFound},
	} {
		_, err := tc.c.Chat.SendMessage(context.Background(), connect.NewRequest(tc.req))
		if err == nil {
			t.Fatalf("%s: no error", name)
		}
		wantCode(t, err, tc.code)
	}
	if n := e.count(`SELECT count(*) FROM messages`); n != 0 {
		t.Fatalf("refused sends wrote %d messages", n)
	}
	// The longest body allowed is 4,000 characters, not bytes; tabs, line
	// breaks, joined emoji and right-to-left marks are fine.
	e.send(author, pod.Id, "max", strings.Repeat("é", 4000))
	e.send(author, pod.Id, "text", "a\tb\r\nc 👨\u200d👩\u200d👧 \u200fשלום\u200f")
}

func TestListMessagesPagesBackOldestFirst(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	author, stranger := e.signUp(), e.signUp()
	pod := e.createPod(author, 4)
	for i := range 7 {
		e.send(author, pod.Id, fmt.Sprint(i), fmt.Sprintf("message %d", i))
	}
	list := func(c *client, before int64, limit int32) (*podsv1.ListMessagesResponse, error) {
		res, err := c.Chat.ListMessages(context.Background(), connect.NewRequest(&podsv1.ListMessagesRequest{
			PodId: pod.Id, BeforeSeq: before, Limit: limit,
		}))
		if err != nil {
			return nil, err
		}
		return res.Msg, nil
	}
	var bodies []string
	before := int64(0)
	for {
		page, err := list(author, before, 3)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range page.Messages {
			got = append(got, m.Body)
		}
		bodies = append(got, bodies...)
		if !page.HasMore {
			break
		}
		before = page.Messages[0].Seq
	}
	want := "message 0,message 1,message 2,message 3,message 4,message 5,message 6"
	if got := strings.Join(bodies, ","); got != want {
		t.Fatalf("paged through %s, want %s", got, want)
	}
	_, err := list(stranger, 0, 10)
	wantCode(t, err, connect.CodeNotFound)
	_, err = list(author, 0, 201)
	wantCode(t, err, connect.CodeInvalidArgument)
	_, err = list(author, -1, 10)
	wantCode(t, err, connect.CodeInvalidArgument)
}

func TestWritesAreRateLimitedPerUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{WriteRate: 0.001, WriteBurst: 3})
	author, other := e.signUp(), e.signUp()
	pod := e.createPod(author, 4) // one token
	e.send(author, pod.Id, "1", "one")
	e.send(author, pod.Id, "2", "two")
	_, err := author.Chat.SendMessage(context.Background(), connect.NewRequest(&podsv1.SendMessageRequest{
		PodId: pod.Id, IdempotencyKey: "3", Body: "three",
	}))
	wantCode(t, err, connect.CodeResourceExhausted)
	// Switching the coach is a write too (each switch is an event).
	_, err = author.Pod.SetCoach(context.Background(), connect.NewRequest(&podsv1.SetCoachRequest{PodId: pod.Id, Enabled: false}))
	wantCode(t, err, connect.CodeResourceExhausted)
	// Someone else is not slowed down.
	e.createPod(other, 4)
}
