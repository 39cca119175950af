package rpc_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/pods-dev/pods/moderator"
	"github.com/pods-dev/pods/rpc"
	podsv1 "github.com/pods-dev/pods/rpc/gen/pods/v1"
)

func TestCoachSpeaksThroughTheStreamAndCanBeSwitchedOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	ctx := context.Background()
	owner, member := e.signUp(), e.signUp()
	pod := e.createPod(owner, 4)
	e.join(member, pod)
	s := e.subscribe(member, nil)
	ready := s.ready()
	var coachID string
	for _, m := range ready.Pods[0].Pod.Members {
		if m.Role == podsv1.MemberRole_MEMBER_ROLE_COACH {
			coachID = m.User.Id
		}
	}
	if coachID == "" || !ready.Pods[0].Pod.CoachEnabled {
		t.Fatalf("no coach in %v", ready.Pods[0].Pod)
	}

	// The pod is quiet three hours on. The members get no check-in
	// reminder (no local time reaches 24:00), so that the coach's quiet
	// nudge is its only message whatever the time of day.
	e.exec(`UPDATE memberships SET reminder_time = '24:00' WHERE pod_id = $1`, pod.Id)
	quiet := func() *moderator.Coach {
		return moderator.New(moderator.Config{Pool: e.db.Pool, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time {
			return time.Now().Add(3 * time.Hour)
		}})
	}
	if err := quiet().Step(ctx); err != nil {
		t.Fatal(err)
	}
	created := s.nextLogged()
	msg := created.GetMessageCreated().GetMessage()
	if msg.GetAuthorId() != coachID {
		t.Fatalf("got %v, want the coach's message", created)
	}
	intervened := s.nextLogged().GetCoachIntervened()
	if intervened.GetMessageId() != msg.Id || intervened.GetTrigger() != podsv1.CoachTrigger_COACH_TRIGGER_QUIET {
		t.Fatalf("got %v, want coachIntervened for %s", intervened, msg.Id)
	}
	// History says why the coach spoke too (after a reload, the web client
	// showed just "coach"; found by review); members' messages say nothing.
	e.send(member, pod.Id, "after", "morning, coach")
	history, err := member.Chat.ListMessages(ctx, connect.NewRequest(&podsv1.ListMessagesRequest{PodId: pod.Id}))
	if err != nil {
		t.Fatal(err)
	}
	if h := history.Msg.Messages; len(h) != 2 || h[0].Id != msg.Id || h[0].CoachTrigger != podsv1.CoachTrigger_COACH_TRIGGER_QUIET ||
		h[1].CoachTrigger != podsv1.CoachTrigger_COACH_TRIGGER_UNSPECIFIED {
		t.Fatalf("history %v, want the coach's nudge with its trigger, then the member's message", h)
	}
	s.nextLogged() // the member's message

	setCoach := func(c *client, on bool) error {
		_, err := c.Pod.SetCoach(ctx, connect.NewRequest(&podsv1.SetCoachRequest{PodId: pod.Id, Enabled: on}))
		return err
	}
	wantCode(t, setCoach(member, false), connect.CodePermissionDenied)
	wantCode(t, setCoach(e.signUp(), false), connect.CodeNotFound)
	if err := setCoach(owner, false); err != nil {
		t.Fatal(err)
	}
	if ev := s.nextLogged(); ev.GetCoachSwitched() == nil || ev.GetCoachSwitched().GetEnabled() {
		t.Fatalf("after switching the coach off: got %v, want coachSwitched off", ev)
	}
	if err := setCoach(owner, false); err != nil { // already off: no event
		t.Fatal(err)
	}
	e.send(member, pod.Id, "k", "anyone up?")
	if ev := s.nextLogged(); ev.GetMessageCreated() == nil {
		t.Fatalf("got %v, want the message", ev)
	}
	if err := quiet().Step(ctx); err != nil {
		t.Fatal(err)
	}
	s.quiet(300 * time.Millisecond)
	if err := setCoach(owner, true); err != nil {
		t.Fatal(err)
	}
	if ev := s.nextLogged(); !ev.GetCoachSwitched().GetEnabled() {
		t.Fatalf("after switching the coach on: got %v, want coachSwitched on", ev)
	}
	if err := quiet().Step(ctx); err != nil {
		t.Fatal(err)
	}
	if ev := s.nextLogged(); ev.GetMessageCreated().GetMessage().GetAuthorId() != coachID {
		t.Fatalf("switched back on: got %v", ev)
	}
}
