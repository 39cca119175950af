package rpc_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/pods-dev/pods/rpc"
	podsv1 "github.com/pods-dev/pods/rpc/gen/pods/v1"
)

func edit(c *client, id, body string, humor *bool) (*podsv1.Message, error) {
	res, err := c.Chat.EditMessage(context.Background(), connect.NewRequest(&podsv1.EditMessageRequest{
		MessageId: id, Body: body, Humor: humor,
	}))
	if err != nil {
		return nil, err
	}
	return res.Msg.Message, nil
}

func deleteMessage(c *client, id string) error {
	_, err := c.Chat.DeleteMessage(context.Background(), connect.NewRequest(&podsv1.DeleteMessageRequest{MessageId: id}))
	return err
}

func addReaction(c *client, id, emoji string) error {
	_, err := c.Chat.AddReaction(context.Background(), connect.NewRequest(&podsv1.AddReactionRequest{MessageId: id, Emoji: emoji}))
	return err
}

// reactionsOf spells a message's reactions as "emoji:user,user emoji:user".
func reactionsOf(m *podsv1.Message) string {
	var parts []string
	for _, r := range m.GetReactions() {
		parts = append(parts, r.Emoji+":"+strings.Join(r.UserIds, ","))
	}
	return strings.Join(parts, " ")
}

func removeReaction(c *client, id, emoji string) error {
	_, err := c.Chat.RemoveReaction(context.Background(), connect.NewRequest(&podsv1.RemoveReactionRequest{MessageId: id, Emoji: emoji}))
	return err
}

// must fails t if err is not nil.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestEditMessage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	author, member := e.signUp(), e.signUp()
	pod := e.createPod(author, 4)
	e.join(member, pod)
	s := e.subscribe(member, nil)
	s.ready()
	sent := e.send(author, pod.Id, "k", "I slept in")
	s.next() // messageCreated

	edited, err := edit(author, sent.Id, "I got up at six", nil)
	must(t, err)
	if edited.Body != "I got up at six" || edited.EditedAt == nil || edited.Seq != sent.Seq || edited.Humor {
		t.Fatalf("edited: %v", edited)
	}
	ev := s.next()
	if m := ev.GetMessageEdited().GetMessage(); m.GetBody() != "I got up at six" || m.GetEditedAt() == nil || m.GetId() != sent.Id {
		t.Fatalf("event: %v", ev)
	}

	// Only the humor flag.
	joke, err := edit(author, sent.Id, "I got up at six", proto.Bool(true))
	must(t, err)
	if !joke.Humor || joke.Body != "I got up at six" {
		t.Fatalf("humor edit: %v", joke)
	}
	if m := s.next().GetMessageEdited().GetMessage(); !m.GetHumor() || m.GetBody() != "I got up at six" {
		t.Fatalf("humor event: %v", m)
	}

	// An edit's event carries the reactions, as MessagesList orders them.
	must(t, addReaction(member, sent.Id, "😂"))
	must(t, addReaction(author, sent.Id, "🔥"))
	must(t, addReaction(author, sent.Id, "😂"))
	s.next()
	s.next()
	s.next() // reactionAdded ×3
	wantReactions := "😂:" + member.user.Id + "," + author.user.Id + " 🔥:" + author.user.Id
	sixish, err := edit(author, sent.Id, "I got up at six-ish", proto.Bool(true))
	must(t, err)
	if got := reactionsOf(sixish); got != wantReactions {
		t.Fatalf("edit response reactions %q, want %q", got, wantReactions)
	}
	if got := reactionsOf(s.next().GetMessageEdited().GetMessage()); got != wantReactions {
		t.Fatalf("edit event reactions %q, want %q", got, wantReactions)
	}
	joke = sixish
	must(t, removeReaction(author, sent.Id, "🔥"))
	must(t, removeReaction(author, sent.Id, "😂"))
	s.next()
	s.next() // reactionRemoved ×2

	// An edit that changes nothing emits nothing and keeps edited_at; the
	// response carries the reactions.
	for _, humor := range []*bool{nil, proto.Bool(true)} {
		same, err := edit(author, sent.Id, "I got up at six-ish", humor)
		must(t, err)
		if !same.EditedAt.AsTime().Equal(joke.EditedAt.AsTime()) || !same.Humor {
			t.Fatalf("no-op edit changed the message: %v", same)
		}
		if r := same.Reactions; len(r) != 1 || r[0].Emoji != "😂" || len(r[0].UserIds) != 1 || r[0].UserIds[0] != member.user.Id {
			t.Fatalf("reactions: %v", r)
		}
	}
	s.quiet(300 * time.Millisecond)
	if n := e.count(`SELECT count(*) FROM events WHERE kind = 'message_edited'`); n != 3 {
		t.Fatalf("%d message_edited events, want 3", n)
	}
}

// A retry of SendMessage after the message was edited (the first answer was
// lost, and another device edited the message) returns the message; a
// different message under the same key is still refused (found by a
// review: the retry got already_exists).
func TestSendRetriedAfterAnEditReturnsTheMessage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	ana := e.signUp()
	pod := e.createPod(ana, 4)
	humor := true
	for _, change := range []struct {
		key, body string
		humor     *bool
	}{{"k1", "hello", nil}, {"k2", "helo", &humor}} {
		m := e.send(ana, pod.Id, change.key, "helo")
		if _, err := edit(ana, m.Id, change.body, change.humor); err != nil {
			t.Fatal(err)
		}
		retry := func(body string) (*connect.Response[podsv1.SendMessageResponse], error) {
			return ana.Chat.SendMessage(context.Background(), connect.NewRequest(&podsv1.SendMessageRequest{
				PodId: pod.Id, IdempotencyKey: change.key, Body: body}))
		}
		res, err := retry("helo")
		if err != nil || res.Msg.Message.Id != m.Id {
			t.Fatalf("%s: retry after the edit: %v, %v", change.key, res, err)
		}
		_, err = retry("something else")
		wantCode(t, err, connect.CodeAlreadyExists)
	}
}

func TestEditMessageRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	author, member, stranger := e.signUp(), e.signUp(), e.signUp()
	pod := e.createPod(author, 4)
	e.join(member, pod)
	sent := e.send(author, pod.Id, "k", "original")

	for name, tc := range map[string]struct {
		c    *client
		id   string
		body string
		code connect.Code
	}{
		"another member": {member, sent.Id, "mine now", connect.CodePermissionDenied},
		"stranger":       {stranger, sent.Id, "mine now", connect.CodeNotFound},
		"unknown":        {author, "00000000-0000-0000-0000-000000000000", "x", connect.CodeNotFound},
		"malformed id":   {author, "message-1", "x", connect.CodeInvalidArgument},
		"no id":          {author, "", "x", connect.CodeInvalidArgument},
		"blank body":     {author, sent.Id, " \n\t ", connect.CodeInvalidArgument},
		"long body":      {author, sent.Id, strings.Repeat("é", 4001), connect.CodeInvalidArgument},
	} {
		_, err := edit(tc.c, tc.id, tc.body, proto.Bool(true))
		if err == nil {
			t.Fatalf("%s: no error", name)
		}
		wantCode(t, err, tc.code)
	}
	if n := e.count(`SELECT count(*) FROM messages WHERE body = 'original' AND NOT humor AND edited_at IS NULL`); n != 1 {
		t.Fatal("a refused edit changed the message")
	}
	if n := e.count(`SELECT count(*) FROM events WHERE kind = 'message_edited'`); n != 0 {
		t.Fatalf("refused edits wrote %d events", n)
	}
	// The longest body allowed is 4,000 characters.
	_, err := edit(author, sent.Id, strings.Repeat("é", 4000), nil)
	must(t, err)
}

func TestDeleteMessage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	owner, author, other, stranger := e.signUp(), e.signUp(), e.signUp(), e.signUp()
	pod := e.createPod(owner, 4)
	e.join(author, pod)
	e.join(other, pod)
	first := e.send(author, pod.Id, "1", "secret text one")
	second := e.send(author, pod.Id, "2", "secret text two")
	_, err := edit(author, second.Id, "secret text two, edited", nil)
	must(t, err)
	must(t, addReaction(other, second.Id, "👍"))
	s := e.subscribe(other, nil)
	s.ready()

	// Neither another member nor a stranger may delete it.
	wantCode(t, deleteMessage(other, first.Id), connect.CodePermissionDenied)
	wantCode(t, deleteMessage(stranger, first.Id), connect.CodeNotFound)
	wantCode(t, deleteMessage(author, "00000000-0000-0000-0000-000000000000"), connect.CodeNotFound)
	wantCode(t, deleteMessage(author, "message-1"), connect.CodeInvalidArgument)
	if n := e.count(`SELECT count(*) FROM messages`); n != 2 {
		t.Fatalf("refused deletes left %d messages, want 2", n)
	}

	// The author deletes one, the pod's owner the other.
	must(t, deleteMessage(author, first.Id))
	if id := s.next().GetMessageDeleted().GetMessageId(); id != first.Id {
		t.Fatalf("deleted %q, want %q", id, first.Id)
	}
	must(t, deleteMessage(owner, second.Id))
	if id := s.next().GetMessageDeleted().GetMessageId(); id != second.Id {
		t.Fatalf("deleted %q, want %q", id, second.Id)
	}
	if n := e.count(`SELECT count(*) FROM messages WHERE body LIKE '%secret text%'`); n != 0 {
		t.Fatalf("%d deleted messages left", n)
	}
	if n := e.count(`SELECT count(*) FROM events WHERE payload::text LIKE '%secret text%'`); n != 0 {
		t.Fatalf("%d events still hold deleted text", n)
	}
	// The reaction went with its message, silently.
	if n := e.count(`SELECT count(*) FROM reactions`) + e.count(`SELECT count(*) FROM events WHERE kind = 'reaction_removed'`); n != 0 {
		t.Fatalf("%d reactions or reaction_removed events left", n)
	}

	// Deleting again succeeds for the author and the owner, and nobody
	// else learns more than not_found.
	events := e.count(`SELECT count(*) FROM events`)
	must(t, deleteMessage(author, first.Id))
	must(t, deleteMessage(owner, first.Id))
	must(t, deleteMessage(author, second.Id))
	wantCode(t, deleteMessage(other, first.Id), connect.CodeNotFound)
	wantCode(t, deleteMessage(stranger, first.Id), connect.CodeNotFound)
	if n := e.count(`SELECT count(*) FROM events`); n != events {
		t.Fatalf("repeated deletes wrote %d events", n-events)
	}
	// A late retry of a deleted message's send stores nothing.
	_, err = author.Chat.SendMessage(context.Background(), connect.NewRequest(&podsv1.SendMessageRequest{PodId: pod.Id, IdempotencyKey: "1", Body: "secret text one"}))
	wantCode(t, err, connect.CodeNotFound)
	if n := e.count(`SELECT count(*) FROM messages`); n != 0 {
		t.Fatalf("the retry stored %d messages", n)
	}
	marker := e.send(other, pod.Id, "m", "marker")
	if id := s.next().GetMessageCreated().GetMessage().GetId(); id != marker.Id {
		t.Fatalf("an event came before the marker")
	}
}

func TestReactions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	owner, member, stranger := e.signUp(), e.signUp(), e.signUp()
	pod := e.createPod(owner, 4)
	e.join(member, pod)
	sent := e.send(owner, pod.Id, "k", "up at six!")
	s := e.subscribe(owner, nil)
	s.ready()
	family := "👨\u200d👩\u200d👧"

	must(t, addReaction(member, sent.Id, "👍"))
	ev := s.next().GetReactionAdded()
	if ev.GetMessageId() != sent.Id || ev.GetUserId() != member.user.Id || ev.GetEmoji() != "👍" {
		t.Fatalf("reactionAdded: %v", ev)
	}
	must(t, addReaction(member, sent.Id, "👍")) // a repeat: nothing
	must(t, addReaction(owner, sent.Id, "👍"))
	if ev := s.next().GetReactionAdded(); ev.GetUserId() != owner.user.Id {
		t.Fatalf("after a repeated add: %v", ev)
	}
	must(t, addReaction(member, sent.Id, family))
	s.next()

	res, err := member.Chat.ListMessages(context.Background(), connect.NewRequest(&podsv1.ListMessagesRequest{PodId: pod.Id}))
	must(t, err)
	r := res.Msg.Messages[0].Reactions
	if len(r) != 2 || r[0].Emoji != "👍" || strings.Join(r[0].UserIds, ",") != member.user.Id+","+owner.user.Id ||
		r[1].Emoji != family || strings.Join(r[1].UserIds, ",") != member.user.Id {
		t.Fatalf("listed reactions: %v", r)
	}

	must(t, removeReaction(member, sent.Id, "👍"))
	ev = s.next().GetReactionRemoved()
	if ev.GetMessageId() != sent.Id || ev.GetUserId() != member.user.Id || ev.GetEmoji() != "👍" {
		t.Fatalf("reactionRemoved: %v", ev)
	}
	must(t, removeReaction(member, sent.Id, "👍")) // a repeat: nothing
	must(t, removeReaction(member, sent.Id, "🎉")) // never added: nothing
	if n := e.count(`SELECT count(*) FROM events WHERE kind LIKE 'reaction_%'`); n != 4 {
		t.Fatalf("%d reaction events, want 4", n)
	}

	// Refusals write nothing.
	for name, tc := range map[string]struct {
		c     *client
		id    string
		emoji string
		code  connect.Code
	}{
		"no emoji":     {member, sent.Id, "", connect.CodeInvalidArgument},
		"letters":      {member, sent.Id, "ok", connect.CodeInvalidArgument},
		"shortcode":    {member, sent.Id, ":+1:", connect.CodeInvalidArgument},
		"with a space": {member, sent.Id, "👍 ", connect.CodeInvalidArgument},
		"with a word":  {member, sent.Id, "👍yes", connect.CodeInvalidArgument},
		"keycap":       {member, sent.Id, "1\ufe0f\u20e3", connect.CodeInvalidArgument},
		"joiner only":  {member, sent.Id, "\u200d", connect.CodeInvalidArgument},
		"control":      {member, sent.Id, "👍\x00", connect.CodeInvalidArgument},
		"too long":     {member, sent.Id, strings.Repeat("👍", 9), connect.CodeInvalidArgument},
		"stranger":     {stranger, sent.Id, "👍", connect.CodeNotFound},
		"unknown":      {member, "00000000-0000-0000-0000-000000000000", "👍", connect.CodeNotFound},
		"malformed id": {member, "message-1", "👍", connect.CodeInvalidArgument},
	} {
		for _, change := range []func(*client, string, string) error{addReaction, removeReaction} {
			err := change(tc.c, tc.id, tc.emoji)
			if err == nil {
				t.Fatalf("%s: no error", name)
			}
			wantCode(t, err, tc.code)
		}
	}
	if n := e.count(`SELECT count(*) FROM reactions`); n != 2 {
		t.Fatalf("%d reactions, want 2", n)
	}
	if n := e.count(`SELECT count(*) FROM events WHERE kind LIKE 'reaction_%'`); n != 4 {
		t.Fatalf("refused reactions wrote %d events", n-4)
	}
	marker := e.send(member, pod.Id, "m", "marker")
	if id := s.next().GetMessageCreated().GetMessage().GetId(); id != marker.Id {
		t.Fatalf("an event came before the marker")
	}
}

func TestReactionsAndDeletesUnderConcurrency(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	owner, author := e.signUp(), e.signUp()
	pod := e.createPod(owner, 4)
	e.join(author, pod)
	sent := e.send(author, pod.Id, "k", "hello")

	// The same reaction twenty times at once, each on its own connection,
	// then the author and the owner deleting the message at once.
	var wg sync.WaitGroup
	errs := make([]error, 22)
	for i := range 20 {
		c := e.as(owner)
		wg.Go(func() { errs[i] = addReaction(c, sent.Id, "🔥") })
	}
	wg.Wait()
	for i, c := range []*client{e.as(author), e.as(owner)} {
		wg.Go(func() { errs[20+i] = deleteMessage(c, sent.Id) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	for kind, want := range map[string]int{"reaction_added": 1, "message_deleted": 2} { // created became deleted
		if n := e.count(`SELECT count(*) FROM events WHERE kind = $1`, kind); n != want {
			t.Fatalf("%d %s events, want %d", n, kind, want)
		}
	}

	// Reactions racing a delete either land before it or find no message.
	racing := e.send(author, pod.Id, "r", "going soon")
	for i := range 20 {
		c := e.as(owner)
		wg.Go(func() { errs[i] = addReaction(c, racing.Id, "🔥") })
	}
	must(t, deleteMessage(author, racing.Id))
	wg.Wait()
	for i, err := range errs[:20] {
		if err != nil && connect.CodeOf(err) != connect.CodeNotFound {
			t.Fatalf("reaction %d: %v", i, err)
		}
	}
}

// Edits, reactions and message deletes racing the pod's deletion end well:
// each either lands before the pod goes or finds it gone (found by a
// review: they locked the message, then the pod, and the pod's deletion
// the other way round; Postgres broke the deadlock by failing one side,
// which got internal).
func TestMessageWritesRacingThePodsDeletion(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	ana, ben := e.signUp(), e.signUp()
	for i := range 30 {
		pod := e.createPod(ana, 4)
		e.join(ben, pod)
		m := e.send(ben, pod.Id, fmt.Sprint(i), "hi")
		m2 := e.send(ben, pod.Id, fmt.Sprint(i, "b"), "there")
		writes := map[string]func() error{
			"AddReaction":   func() error { return addReaction(ben, m.Id, "👍") },
			"EditMessage":   func() error { _, err := edit(ben, m.Id, "hello", nil); return err },
			"DeleteMessage": func() error { return deleteMessage(ben, m2.Id) },
			"DeletePod": func() error {
				_, err := ana.Pod.DeletePod(context.Background(), connect.NewRequest(&podsv1.DeletePodRequest{PodId: pod.Id}))
				return err
			},
		}
		var wg sync.WaitGroup
		for name, write := range writes {
			wg.Go(func() {
				if err := write(); err != nil && connect.CodeOf(err) != connect.CodeNotFound {
					t.Errorf("round %d: %s: %v", i, name, err)
				}
			})
		}
		wg.Wait()
	}
}
