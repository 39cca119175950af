package rpc_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/pods-dev/pods/rpc"
	podsv1 "github.com/pods-dev/pods/rpc/gen/pods/v1"
	"github.com/pods-dev/pods/rpc/gen/pods/v1/podsv1connect"
)

// progress returns a ProgressService client with c's token.
func (e *env) progress(c *client) podsv1connect.ProgressServiceClient {
	transport := &http.Transport{Protocols: h2cOnly()}
	e.t.Cleanup(transport.CloseIdleConnections)
	return podsv1connect.NewProgressServiceClient(&http.Client{Transport: bearer{token: &c.token, next: transport}}, e.url)
}

// signUpIn returns a client of a new user living in the time zone tz.
func (e *env) signUpIn(tz string) *client {
	e.t.Helper()
	c := e.anonymous()
	res, err := c.Auth.SignUp(context.Background(), connect.NewRequest(&podsv1.SignUpRequest{
		Handle: fmt.Sprintf("user%d", userCount.Add(1)), Password: "correct horse", DisplayName: "Test User",
		Timezone: tz,
	}))
	if err != nil {
		e.t.Fatalf("sign up: %v", err)
	}
	c.token, c.user = res.Msg.Token, res.Msg.User
	return c
}

// checkIn records a check-in and fails the test on error.
func (e *env) checkIn(c *client, podID, date string, done bool, note string) *podsv1.CheckInResponse {
	e.t.Helper()
	res, err := e.progress(c).CheckIn(context.Background(), connect.NewRequest(&podsv1.CheckInRequest{
		PodId: podID, Date: date, Done: done, Note: note,
	}))
	if err != nil {
		e.t.Fatalf("check in %q: %v", date, err)
	}
	return res.Msg
}

// history stores done (or not) check-ins of a user for the local days
// from-back to to-back days before their today, straight into the table.
func (e *env) history(podID, userID string, from, to int, done bool) {
	e.t.Helper()
	_, err := e.db.Pool.Exec(context.Background(), `
		INSERT INTO check_ins (pod_id, user_id, date, done)
		SELECT $1, u.id, (now() AT TIME ZONE u.timezone)::date - g, $5
		FROM users u, generate_series($3::int, $4::int) g WHERE u.id = $2`, podID, userID, from, to, done)
	if err != nil {
		e.t.Fatalf("storing history: %v", err)
	}
}

// localDay returns the date daysBack days before today in tz, counted in
// civil days.
func localDay(t *testing.T, tz string, daysBack int) string {
	t.Helper()
	loc, err := time.LoadLocation(tz)
	if err != nil {
		t.Fatal(err)
	}
	y, m, d := time.Now().In(loc).Date()
	return time.Date(y, m, d-daysBack, 0, 0, 0, 0, time.UTC).Format("2006-01-02")
}

func (e *env) getProgress(c *client, podID string) []*podsv1.MemberProgress {
	e.t.Helper()
	res, err := e.progress(c).GetProgress(context.Background(), connect.NewRequest(&podsv1.GetProgressRequest{PodId: podID}))
	if err != nil {
		e.t.Fatalf("get progress: %v", err)
	}
	return res.Msg.Members
}

func TestCheckInTodayAndExplicitDate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	ana := e.signUp() // Europe/Berlin
	pod := e.createPod(ana, 4)

	res := e.checkIn(ana, pod.Id, "", true, "ran 5k")
	c := res.CheckIn
	if c.Date != localDay(t, "Europe/Berlin", 0) || !c.Done || c.Note != "ran 5k" || c.PodId != pod.Id || c.UserId != ana.user.Id {
		t.Fatalf("check-in %v, want today's, done, with the note", c)
	}
	if res.Streak.Current != 1 || res.Streak.Longest != 1 {
		t.Fatalf("streak %v, want 1/1", res.Streak)
	}

	yesterday := localDay(t, "Europe/Berlin", 1)
	res = e.checkIn(ana, pod.Id, yesterday, true, "")
	if res.CheckIn.Date != yesterday || res.Streak.Current != 2 || res.Streak.Longest != 2 {
		t.Fatalf("got %v, want yesterday's check-in and a streak of 2", res)
	}
	// Seven days back is the limit, and allowed.
	e.checkIn(ana, pod.Id, localDay(t, "Europe/Berlin", 7), false, "")
	if n := e.count(`SELECT count(*) FROM check_ins WHERE pod_id = $1`, pod.Id); n != 3 {
		t.Fatalf("%d check-ins stored, want 3", n)
	}
}

func TestCheckInRepeatUpdatesTheOneRow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	ana := e.signUp()
	pod := e.createPod(ana, 4)
	events := func() int {
		return e.count(`SELECT count(*) FROM events WHERE pod_id = $1 AND kind = 'check_in_recorded'`, pod.Id)
	}

	first := e.checkIn(ana, pod.Id, "", false, "skipped")
	second := e.checkIn(ana, pod.Id, "", true, "did it after all")
	if second.CheckIn.Note != "did it after all" || !second.CheckIn.Done || second.Streak.Current != 1 {
		t.Fatalf("repeat gave %v, want the new note, done and a streak of 1", second)
	}
	if first.Streak.Current != 0 {
		t.Fatalf("a check-in not done gave streak %v, want 0", first.Streak)
	}
	if n := e.count(`SELECT count(*) FROM check_ins WHERE pod_id = $1`, pod.Id); n != 1 {
		t.Fatalf("%d rows after a repeat, want 1", n)
	}
	if n := events(); n != 2 {
		t.Fatalf("%d check-in events, want 2", n)
	}

	// The same values again: the stored check-in back, and no event.
	third := e.checkIn(ana, pod.Id, "", true, "did it after all")
	if !third.CheckIn.UpdatedAt.AsTime().Equal(second.CheckIn.UpdatedAt.AsTime()) || third.Streak.Current != 1 {
		t.Fatalf("identical repeat gave %v, want %v unchanged", third, second)
	}
	if n := events(); n != 2 {
		t.Fatalf("%d check-in events after an identical repeat, want 2", n)
	}
}

func TestCheckInRefusesBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	ana, carl := e.signUp(), e.signUp()
	pod := e.createPod(ana, 4)
	lastSeq := e.count(`SELECT last_seq FROM pods WHERE id = $1`, pod.Id)

	for _, tc := range []struct {
		name string
		c    *client
		req  *podsv1.CheckInRequest
		code connect.Code
	}{
		{"tomorrow", ana, &podsv1.CheckInRequest{PodId: pod.Id, Date: localDay(t, "Europe/Berlin", -1), Done: true}, connect.CodeInvalidArgument},
		{"8 days back", ana, &podsv1.CheckInRequest{PodId: pod.Id, Date: localDay(t, "Europe/Berlin", 8), Done: true}, connect.CodeInvalidArgument},
		{"malformed date", ana, &podsv1.CheckInRequest{PodId: pod.Id, Date: "yesterday", Done: true}, connect.CodeInvalidArgument},
		{"no such day", ana, &podsv1.CheckInRequest{PodId: pod.Id, Date: "2026-02-30", Done: true}, connect.CodeInvalidArgument},
		{"short date", ana, &podsv1.CheckInRequest{PodId: pod.Id, Date: "2026-1-5", Done: true}, connect.CodeInvalidArgument},
		{"long note", ana, &podsv1.CheckInRequest{PodId: pod.Id, Done: true, Note: strings.Repeat("é", 501)}, connect.CodeInvalidArgument},
		{"NUL in note", ana, &podsv1.CheckInRequest{PodId: pod.Id, Done: true, Note: "a\x00b"}, connect.CodeInvalidArgument},
		{"bad pod id", ana, &podsv1.CheckInRequest{PodId: "pod", Done: true}, connect.CodeInvalidArgument},
		{"not a member", carl, &podsv1.CheckInRequest{PodId: pod.Id, Done: true}, connect.CodeNotFound},
	} {
		_, err := e.progress(tc.c).CheckIn(context.Background(), connect.NewRequest(tc.req))
		if err == nil {
			t.Fatalf("%s: accepted", tc.name)
		}
		wantCode(t, err, tc.code)
	}
	if n := e.count(`SELECT count(*) FROM check_ins`); n != 0 {
		t.Fatalf("%d check-ins stored, want none", n)
	}
	if n := e.count(`SELECT last_seq FROM pods WHERE id = $1`, pod.Id); n != lastSeq {
		t.Fatalf("pod's seq moved from %d to %d", lastSeq, n)
	}
	_, err := e.progress(carl).GetProgress(context.Background(), connect.NewRequest(&podsv1.GetProgressRequest{PodId: pod.Id}))
	wantCode(t, err, connect.CodeNotFound)

	// A note of 500 characters, or blank, is fine.
	e.checkIn(ana, pod.Id, "", true, strings.Repeat("é", 500))
	e.checkIn(ana, pod.Id, "", true, "  ")
}

func TestCheckInEventReachesThePod(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	ana, ben := e.signUp(), e.signUp()
	pod := e.createPod(ana, 4)
	e.join(ben, pod)
	e.history(pod.Id, ana.user.Id, 1, 2, true)

	stream := e.subscribe(ben, nil)
	stream.ready()
	res := e.checkIn(ana, pod.Id, "", true, "three in a row")
	ev := stream.nextLogged()
	got := ev.GetCheckInRecorded()
	if got == nil || ev.PodId != pod.Id {
		t.Fatalf("ben got %v, want checkInRecorded", ev)
	}
	c := got.CheckIn
	if c.UserId != ana.user.Id || c.Date != res.CheckIn.Date || !c.Done || c.Note != "three in a row" ||
		!c.UpdatedAt.AsTime().Equal(res.CheckIn.UpdatedAt.AsTime()) {
		t.Fatalf("event holds %v, want %v", c, res.CheckIn)
	}
	if got.Streak.Current != 3 || got.Streak.Longest != 3 {
		t.Fatalf("event streak %v, want 3/3", got.Streak)
	}
}

func TestStreaksThroughGetProgress(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	ana, ben := e.signUp(), e.signUp()
	pod := e.createPod(ana, 4)
	e.join(ben, pod)
	// Ten days ending yesterday; a day not done; fifteen days before that;
	// and two days too old for the last 30.
	e.history(pod.Id, ana.user.Id, 1, 10, true)
	e.history(pod.Id, ana.user.Id, 11, 11, false)
	e.history(pod.Id, ana.user.Id, 12, 26, true)
	e.history(pod.Id, ana.user.Id, 40, 41, true)

	members := e.getProgress(ben, pod.Id)
	if len(members) != 2 || members[0].UserId != ana.user.Id || members[1].UserId != ben.user.Id {
		t.Fatalf("got %v, want ana and ben (not the coach)", members)
	}
	a, b := members[0], members[1]
	if a.Streak.Current != 10 || a.Streak.Longest != 15 {
		t.Fatalf("ana's streak %v, want 10/15", a.Streak)
	}
	if len(a.Recent) != 26 || a.Recent[0].Date != localDay(t, "Europe/Berlin", 26) || a.Recent[25].Date != localDay(t, "Europe/Berlin", 1) {
		t.Fatalf("ana's recent: %d from %v, want 26 oldest first", len(a.Recent), a.Recent[0])
	}
	if b.Streak.Current != 0 || b.Streak.Longest != 0 || len(b.Recent) != 0 || b.ReminderTime != "20:00" {
		t.Fatalf("ben's progress %v, want nothing and the default reminder", b)
	}

	// Today not done ends the run, in the check-in's answer and in
	// GetProgress; done after all, it extends the run; unchecking
	// yesterday breaks it.
	if s := e.checkIn(ana, pod.Id, "", false, "one cigarette").Streak; s.Current != 0 || s.Longest != 15 {
		t.Fatalf("streak after today not done %v, want 0/15", s)
	}
	if s := e.getProgress(ben, pod.Id)[0].Streak; s.Current != 0 || s.Longest != 15 {
		t.Fatalf("ana's streak after today not done %v, want 0/15", s)
	}
	if s := e.checkIn(ana, pod.Id, "", true, "").Streak; s.Current != 11 || s.Longest != 15 {
		t.Fatalf("streak after today %v, want 11/15", s)
	}
	if s := e.checkIn(ana, pod.Id, localDay(t, "Europe/Berlin", 1), false, "").Streak; s.Current != 1 || s.Longest != 15 {
		t.Fatalf("streak after unchecking yesterday %v, want 1/15", s)
	}
}

func TestCheckInUsesTheUsersTimeZone(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	// UTC+14 and UTC-11: their dates always differ, so one differs from UTC.
	kiri, pago := e.signUpIn("Pacific/Kiritimati"), e.signUpIn("Pacific/Pago_Pago")
	pod := e.createPod(kiri, 4)
	e.join(pago, pod)

	kiriToday := localDay(t, "Pacific/Kiritimati", 0)
	if got := e.checkIn(kiri, pod.Id, "", true, "").CheckIn.Date; got != kiriToday {
		t.Fatalf("Kiritimati's today is %s, want %s", got, kiriToday)
	}
	if got, want := e.checkIn(pago, pod.Id, "", true, "").CheckIn.Date, localDay(t, "Pacific/Pago_Pago", 0); got != want {
		t.Fatalf("Pago Pago's today is %s, want %s", got, want)
	}
	// Kiritimati's today is still the future in Pago Pago.
	_, err := e.progress(pago).CheckIn(context.Background(), connect.NewRequest(&podsv1.CheckInRequest{
		PodId: pod.Id, Date: kiriToday, Done: true,
	}))
	wantCode(t, err, connect.CodeInvalidArgument)

	// Moving west keeps the dates as stored, and the run.
	e.checkIn(kiri, pod.Id, localDay(t, "Pacific/Kiritimati", 1), true, "")
	if _, err := e.db.Pool.Exec(context.Background(), `UPDATE users SET timezone = 'Pacific/Pago_Pago' WHERE id = $1`, kiri.user.Id); err != nil {
		t.Fatal(err)
	}
	p := e.getProgress(kiri, pod.Id)[0]
	if p.Streak.Current != 2 || len(p.Recent) != 2 || p.Recent[1].Date != kiriToday {
		t.Fatalf("after moving: %v, want a streak of 2 with the dates as stored", p)
	}
}

// TestStreakAcrossDST counts runs over civil dates around New York's 2026
// transitions, whose days last 23 and 25 hours.
func TestStreakAcrossDST(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	ana := e.signUpIn("America/New_York")
	pod := e.createPod(ana, 4)
	ctx := context.Background()
	_, err := e.db.Pool.Exec(ctx, `
		INSERT INTO check_ins (pod_id, user_id, date, done)
		SELECT $1::uuid, $2::uuid, d::date, true FROM generate_series('2026-03-05'::date, '2026-03-11', '1 day') d
		UNION ALL
		SELECT $1, $2, d::date, true FROM generate_series('2026-10-25'::date, '2026-11-04', '1 day') d`,
		pod.Id, ana.user.Id)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		today            string
		current, longest int
	}{
		{"2026-03-11", 7, 11}, // today ends the spring run
		{"2026-03-12", 7, 11}, // yesterday does
		{"2026-03-13", 0, 11}, // broken
		{"2026-11-04", 11, 11},
		{"2026-11-05", 11, 11},
		{"2026-11-06", 0, 11},
	} {
		var current, longest int
		if err := e.db.Pool.QueryRow(ctx, `SELECT current, longest FROM pods_streak($1, $2, $3::date)`,
			pod.Id, ana.user.Id, tc.today).Scan(&current, &longest); err != nil {
			t.Fatal(err)
		}
		if current != tc.current || longest != tc.longest {
			t.Errorf("on %s: streak %d/%d, want %d/%d", tc.today, current, longest, tc.current, tc.longest)
		}
	}
}

func TestSetReminder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	ana, carl := e.signUp(), e.signUp()
	pod := e.createPod(ana, 4)
	set := func(c *client, podID, at string) (*podsv1.SetReminderResponse, error) {
		res, err := e.progress(c).SetReminder(context.Background(), connect.NewRequest(&podsv1.SetReminderRequest{PodId: podID, Time: at}))
		if err != nil {
			return nil, err
		}
		return res.Msg, nil
	}

	for _, at := range []string{"25:00", "8pm", "7:30", "07:60", "", "07:30:00"} {
		_, err := set(ana, pod.Id, at)
		wantCode(t, err, connect.CodeInvalidArgument)
	}
	_, err := set(carl, pod.Id, "07:30")
	wantCode(t, err, connect.CodeNotFound)

	res, err := set(ana, pod.Id, "07:30")
	if err != nil || res.Time != "07:30" {
		t.Fatalf("set 07:30: %v, %v", res, err)
	}
	if got := e.getProgress(ana, pod.Id)[0].ReminderTime; got != "07:30" {
		t.Fatalf("GetProgress shows reminder %q, want 07:30", got)
	}
}
