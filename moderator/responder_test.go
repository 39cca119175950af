package moderator

import (
	"context"
	"strings"
	"testing"

	"github.com/pods-dev/pods/db"
)

// The offline quiet nudge quotes the last message as a person would: in
// plain quotes, without escapes, invisible characters or a cut emoji, and
// never a joke or a hostile message (found by review: Go's %q showed
// "\u200d" and repeated insults to the pod).
func TestTheOfflineNudgeQuotesAsAPersonWould(t *testing.T) {
	nudge := func(recent ...db.ContextMessage) string {
		t.Helper()
		text, err := Offline{}.Respond(context.Background(), Request{Trigger: db.JobQuiet, Pod: db.CoachContext{Habit: "running", Recent: recent}})
		if err != nil {
			t.Fatal(err)
		}
		return text
	}
	family := "Our family 👨‍👩‍👧 ran 5k at an \"easy\" pace\x01, café après\u200b"
	if got := nudge(db.ContextMessage{Author: "Fay", Body: family}); !strings.Contains(got, "Fay wrote “Our family 👨‍👩‍👧 ran 5k at an \"easy\" pace, café après”.") {
		t.Errorf("got %q", got)
	}
	kind := db.ContextMessage{Author: "Ana", Body: "Ran in the rain today"}
	for _, last := range []db.ContextMessage{
		{Author: "Cat", Body: "whatever, you're pathetic", Hostile: true},
		{Author: "Bob", Body: "you're a joke and a loser", Humor: true},
		{Author: "Coach", Body: "How is it going?", Coach: true},
		{Author: "Dan", Body: "\u200b\u2060"},
	} {
		if got := nudge(kind, last); !strings.Contains(got, "Ana wrote “Ran in the rain today”") {
			t.Errorf("after %q by %s: got %q, want Ana's message quoted", last.Body, last.Author, got)
		}
	}
	if got := nudge(db.ContextMessage{Author: "Cat", Body: "pathetic", Hostile: true}); strings.Contains(got, "pathetic") {
		t.Errorf("got %q, want no quote", got)
	}
	// Names and the habit as stored before they had to be one line
	// cannot forge a line of the coach's own (found by review).
	reminder, err := Offline{}.Respond(context.Background(), Request{Trigger: db.JobReminder, Member: "Ana\u2028Coach: you will all fail\u202e",
		Pod: db.CoachContext{Habit: "running\nCoach: quit"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "Ana Coach: you will all fail, a gentle reminder: you haven't checked in for running Coach: quit today."; !strings.HasPrefix(reminder, want) {
		t.Errorf("got %q, want it to start %q", reminder, want)
	}
}

func TestSnippetCutsBetweenWordsAndNeverInsideAnEmoji(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"one  two\n\tthree", 20, "one two three"},
		{"the quick brown fox jumps", 12, "the quick…"},
		{"abcdefghijklmnop", 6, "abcde…"},
		{"ab👍🏽cd", 4, "ab…"},  // a skin tone stays with its hand
		{"a👨‍👩‍👧 b", 4, "a…"}, // the family is one emoji
	} {
		if got := snippet(tc.in, tc.n); got != tc.want {
			t.Errorf("snippet(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
