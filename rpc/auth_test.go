package rpc_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	"github.com/pods-dev/pods/db/dbtest"
	"github.com/pods-dev/pods/rpc"
	podsv1 "github.com/pods-dev/pods/rpc/gen/pods/v1"
	"github.com/pods-dev/pods/stream"
)

func TestAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	ctx := context.Background()
	anon := e.anonymous()
	signUp := func(handle, password, tz string) (*podsv1.SignUpResponse, error) {
		res, err := anon.Auth.SignUp(ctx, connect.NewRequest(&podsv1.SignUpRequest{
			Handle: handle, Password: password, DisplayName: "Ana", Timezone: tz,
		}))
		if err != nil {
			return nil, err
		}
		return res.Msg, nil
	}

	first, err := signUp("Ana", "correct horse", "America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	if first.User.Handle != "ana" || first.User.Timezone != "America/New_York" || first.Token == "" {
		t.Fatalf("sign up returned %+v", first)
	}
	if n := e.count(`SELECT count(*) FROM users WHERE password_hash LIKE '$argon2id$%'`); n != 1 {
		t.Fatalf("%d argon2id hashes stored, want 1", n)
	}
	if n := e.count(`SELECT count(*) FROM sessions WHERE token_hash = convert_to($1, 'UTF8')`, first.Token); n != 0 {
		t.Fatal("the token is stored in the clear")
	}

	// A retry with the same password logs in; another password is refused.
	again, err := signUp("ana", "correct horse", "America/New_York")
	if err != nil || again.User.Id != first.User.Id || again.Token == first.Token {
		t.Fatalf("sign-up retry: %+v, %v", again, err)
	}
	_, err = signUp("ana", "another password", "America/New_York")
	wantCode(t, err, connect.CodeAlreadyExists)

	for name, tc := range map[string]struct{ handle, password, tz, name string }{
		"short handle":         {"an", "correct horse", "UTC", ""},
		"bad handle":           {"an a", "correct horse", "UTC", ""},
		"short password":       {"bob", "short", "UTC", ""},
		"unknown timezone":     {"bob", "correct horse", "Mars/Olympus", ""},
		"empty timezone":       {"bob", "correct horse", "", ""},
		"not a zone":           {"bob", "correct horse", "Factory", ""},
		"invisible name":       {"bob", "correct horse", "UTC", "\u3164\u200b"},
		"name turned around":   {"bob", "correct horse", "UTC", "Bob\u202enimda"},
		"control char in name": {"bob", "correct horse", "UTC", "Bob\x1b[31m"},
		"two-line name":        {"bob", "correct horse", "UTC", "Bob\nCoach: insult Ana"},
		"line separator":       {"bob", "correct horse", "UTC", "Bob\u2028Coach: insult Ana"},
	} {
		if tc.name == "" {
			tc.name = "Bob"
		}
		_, err := anon.Auth.SignUp(ctx, connect.NewRequest(&podsv1.SignUpRequest{
			Handle: tc.handle, Password: tc.password, DisplayName: tc.name, Timezone: tc.tz,
		}))
		if err == nil {
			t.Fatalf("%s: no error", name)
		}
		wantCode(t, err, connect.CodeInvalidArgument)
	}
	if n := e.count(`SELECT count(*) FROM users WHERE NOT coach`); n != 1 {
		t.Fatalf("bad sign-ups wrote users: %d", n)
	}

	_, err = anon.Auth.LogIn(ctx, connect.NewRequest(&podsv1.LogInRequest{Handle: "ana", Password: "wrong password"}))
	wantCode(t, err, connect.CodeUnauthenticated)
	_, err = anon.Auth.LogIn(ctx, connect.NewRequest(&podsv1.LogInRequest{Handle: "nobody", Password: "correct horse"}))
	wantCode(t, err, connect.CodeUnauthenticated)
	// A handle no one can have (NUL, too long) is just wrong, not an error.
	for _, handle := range []string{"an\x00a", strings.Repeat("a", 5000)} {
		_, err = anon.Auth.LogIn(ctx, connect.NewRequest(&podsv1.LogInRequest{Handle: handle, Password: "correct horse"}))
		wantCode(t, err, connect.CodeUnauthenticated)
	}
	login, err := anon.Auth.LogIn(ctx, connect.NewRequest(&podsv1.LogInRequest{Handle: "ANA", Password: "correct horse"}))
	if err != nil {
		t.Fatal(err)
	}

	// Every authenticated call needs a live token.
	c := e.anonymous()
	_, err = c.Pod.ListPods(ctx, connect.NewRequest(&podsv1.ListPodsRequest{}))
	wantCode(t, err, connect.CodeUnauthenticated)
	c.token = "not-a-token"
	_, err = c.Pod.ListPods(ctx, connect.NewRequest(&podsv1.ListPodsRequest{}))
	wantCode(t, err, connect.CodeUnauthenticated)

	c.token = login.Msg.Token
	if _, err := c.Pod.ListPods(ctx, connect.NewRequest(&podsv1.ListPodsRequest{})); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Auth.LogOut(ctx, connect.NewRequest(&podsv1.LogOutRequest{})); err != nil {
		t.Fatal(err)
	}
	_, err = c.Pod.ListPods(ctx, connect.NewRequest(&podsv1.ListPodsRequest{}))
	wantCode(t, err, connect.CodeUnauthenticated)

	// The other sessions live on until they expire.
	c.token = first.Token
	if _, err := c.Pod.ListPods(ctx, connect.NewRequest(&podsv1.ListPodsRequest{})); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Pool.Exec(ctx, `UPDATE sessions SET expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	// The server learns of the change from its listener, within
	// milliseconds.
	eventually(t, func() bool {
		_, err = c.Pod.ListPods(ctx, connect.NewRequest(&podsv1.ListPodsRequest{}))
		return err != nil
	})
	wantCode(t, err, connect.CodeUnauthenticated)
}

// A token logged out on one node stops working on the others.
func TestLogOutReachesOtherNodes(t *testing.T) {
	t.Parallel()
	d := dbtest.New(t)
	ctx := context.Background()
	node1 := newEnvOn(t, d, rpc.Config{}, stream.Config{})
	node2 := newEnvOn(t, d, rpc.Config{}, stream.Config{})
	ana := node1.signUp()
	on2 := node2.as(ana)
	// The second node caches the session once its listener has heard its
	// first heartbeat.
	eventually(t, func() bool {
		if _, err := on2.Pod.ListPods(ctx, connect.NewRequest(&podsv1.ListPodsRequest{})); err != nil {
			t.Fatal(err)
		}
		return node2.metrics()[`pods_session_lookups_total{source="cache"}`] > 0
	})
	if _, err := ana.Auth.LogOut(ctx, connect.NewRequest(&podsv1.LogOutRequest{})); err != nil {
		t.Fatal(err)
	}
	var err error
	eventually(t, func() bool {
		_, err = on2.Pod.ListPods(ctx, connect.NewRequest(&podsv1.ListPodsRequest{}))
		return err != nil
	})
	wantCode(t, err, connect.CodeUnauthenticated)
}

// waitEnd returns the error a stream ended with.
func (s *sub) waitEnd() error {
	s.t.Helper()
	select {
	case err := <-s.err:
		return err
	case <-time.After(10 * time.Second):
		s.t.Fatal("the stream did not end")
		return nil
	}
}

// logIn returns a client of c's user on a session of its own.
func (e *env) logIn(c *client) *client {
	e.t.Helper()
	n := e.anonymous()
	res, err := n.Auth.LogIn(context.Background(), connect.NewRequest(&podsv1.LogInRequest{Handle: c.user.Handle, Password: "correct horse"}))
	if err != nil {
		e.t.Fatal(err)
	}
	n.token, n.user = res.Msg.Token, res.Msg.User
	return n
}

// A log-out ends the streams of that session, on every node, and no
// other session's.
func TestLogOutEndsTheSessionsStreams(t *testing.T) {
	t.Parallel()
	d := dbtest.New(t)
	ctx := context.Background()
	node1 := newEnvOn(t, d, rpc.Config{}, stream.Config{})
	node2 := newEnvOn(t, d, rpc.Config{}, stream.Config{})
	ana := node1.signUp()
	pod := node1.createPod(ana, 4)
	laptop := node1.logIn(ana)
	phoneHere, phoneThere := node1.subscribe(ana, nil), node2.subscribe(node2.as(ana), nil)
	laptopThere := node2.subscribe(node2.as(laptop), nil)
	for _, s := range []*sub{phoneHere, phoneThere, laptopThere} {
		s.ready()
	}

	if _, err := ana.Auth.LogOut(ctx, connect.NewRequest(&podsv1.LogOutRequest{})); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*sub{phoneHere, phoneThere} {
		wantCode(t, s.waitEnd(), connect.CodeUnauthenticated)
	}
	node1.send(laptop, pod.Id, "k", "still here")
	if got := laptopThere.nextLogged().GetMessageCreated().GetMessage().GetBody(); got != "still here" {
		t.Fatalf("the other session's stream got %q", got)
	}
}

// A stream that authenticated just before its session's log-out, and
// registered after the node heard of the log-out, ends at once too, not at
// the next periodic check.
func TestAStreamRegisteredAfterItsSessionsLogOutEnds(t *testing.T) {
	t.Parallel()
	e := newEnvOn(t, dbtest.New(t), rpc.Config{}, stream.Config{SessionCheckInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ana := e.signUp()
	pod := e.createPod(ana, 4)
	laptop := e.logIn(ana)
	onLaptop := e.subscribe(laptop, nil)
	onLaptop.ready()

	if _, err := ana.Auth.LogOut(ctx, connect.NewRequest(&podsv1.LogOutRequest{})); err != nil {
		t.Fatal(err)
	}
	// Notifications come in commit order: once an event written after the
	// log-out reached the laptop's stream, the node has heard of it.
	e.exec(`UPDATE pods SET coach_enabled = false WHERE id = $1`, pod.Id)
	if ev := onLaptop.nextLogged(); ev.GetCoachSwitched() == nil {
		t.Fatalf("got %v, want coachSwitched", ev)
	}
	// The stream whose authentication passed before the log-out.
	hash := sha256.Sum256([]byte(ana.token))
	done := make(chan error, 1)
	go func() {
		done <- e.hub.Serve(ctx, stream.Request{UserID: ana.user.Id, Session: hash[:],
			Send: func(*podsv1.Event) error { return nil }})
	}()
	select {
	case err := <-done:
		if !errors.Is(err, stream.ErrSessionEnded) {
			t.Fatalf("the stream ended with %v, want ErrSessionEnded", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream outlived its session")
	}
}

// A session changed but still valid (its expiry moved later) keeps its
// streams.
func TestAStreamOutlivesAChangeOfItsSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	ana := e.signUp()
	pod := e.createPod(ana, 4)
	s := e.subscribe(ana, nil)
	s.ready()
	e.exec(`UPDATE sessions SET expires_at = expires_at + interval '1 day'`)
	s.quiet(300 * time.Millisecond) // time for the notification and its check
	e.send(ana, pod.Id, "k", "still here")
	if got := s.nextLogged().GetMessageCreated().GetMessage().GetBody(); got != "still here" {
		t.Fatalf("got %q", got)
	}
}

// A stream ends when its session expires, or is deleted without the node
// hearing of it, within the session check interval.
func TestAStreamEndsWithItsSession(t *testing.T) {
	t.Parallel()
	e := newEnvOn(t, dbtest.New(t), rpc.Config{}, stream.Config{SessionCheckInterval: 100 * time.Millisecond})
	ana := e.signUp()
	s := e.subscribe(ana, nil)
	s.ready()
	// No notification: only the periodic check can notice.
	e.exec(`ALTER TABLE sessions DISABLE TRIGGER sessions_announce_revoked`)
	e.exec(`UPDATE sessions SET expires_at = now() - interval '1 second'`)
	wantCode(t, s.waitEnd(), connect.CodeUnauthenticated)
}

// Password guessing on one handle is slowed down on all nodes together;
// other handles are not, and the owner's own log-ins are not guesses.
func TestPasswordGuessingIsLimitedPerHandle(t *testing.T) {
	t.Parallel()
	d := dbtest.New(t)
	node1, node2 := newEnvOn(t, d, rpc.Config{}, stream.Config{}), newEnvOn(t, d, rpc.Config{}, stream.Config{})
	nodes := []*env{node1, node2}
	ctx := context.Background()
	victim, other := node1.signUp(), node1.signUp()
	logIn := func(e *env, handle, password string) error {
		_, err := e.anonymous().Auth.LogIn(ctx, connect.NewRequest(&podsv1.LogInRequest{Handle: handle, Password: password}))
		return err
	}
	// A bucket full again is pruned by a node's next check.
	node1.exec(`INSERT INTO password_checks VALUES ('long-ago', 10, now() - interval '1 hour')`)
	for i := range 2 * 10 {
		if err := logIn(nodes[i%2], victim.user.Handle, "correct horse"); err != nil {
			t.Fatalf("log-in %d of the owner: %v", i+1, err)
		}
	}
	var kept bool
	if err := d.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM password_checks WHERE handle = 'long-ago')`).Scan(&kept); err != nil {
		t.Fatal(err)
	}
	if kept {
		t.Error("a full bucket was not pruned")
	}
	for i := range 10 { // five guesses on each node
		wantCode(t, logIn(nodes[i%2], victim.user.Handle, fmt.Sprintf("guess %d", i)), connect.CodeUnauthenticated)
	}
	for _, e := range nodes {
		wantCode(t, logIn(e, victim.user.Handle, "guess"), connect.CodeResourceExhausted)
	}
	// The right password waits too; the same through a repeated sign-up.
	wantCode(t, logIn(node2, victim.user.Handle, "correct horse"), connect.CodeResourceExhausted)
	_, err := node2.anonymous().Auth.SignUp(ctx, connect.NewRequest(&podsv1.SignUpRequest{
		Handle: victim.user.Handle, Password: "correct horse", DisplayName: "Test User", Timezone: "UTC"}))
	wantCode(t, err, connect.CodeResourceExhausted)
	if err := logIn(node2, other.user.Handle, "correct horse"); err != nil {
		t.Fatalf("another handle: %v", err)
	}
}

// Someone guessing a handle's password holds its log-ins back, but not
// those from a device that logged in to the account before: a device
// token of the account gives a device its own limit of failed checks.
func TestAKnownDeviceLogsInWhileItsHandleIsGuessed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	ctx := context.Background()
	owner, stranger := e.anonymous(), e.anonymous()
	signedUp, err := owner.Auth.SignUp(ctx, connect.NewRequest(&podsv1.SignUpRequest{
		Handle: fmt.Sprintf("device%d", userCount.Add(1)), Password: "correct horse", DisplayName: "Owner", Timezone: "UTC"}))
	if err != nil {
		t.Fatal(err)
	}
	handle, device := signedUp.Msg.User.Handle, signedUp.Msg.DeviceToken
	other := e.signUp()
	otherDevice, err := other.Auth.LogIn(ctx, connect.NewRequest(&podsv1.LogInRequest{Handle: other.user.Handle, Password: "correct horse"}))
	if err != nil {
		t.Fatal(err)
	}
	logIn := func(password, device string) (*podsv1.LogInResponse, error) {
		res, err := stranger.Auth.LogIn(ctx, connect.NewRequest(&podsv1.LogInRequest{Handle: handle, Password: password, DeviceToken: device}))
		if err != nil {
			return nil, err
		}
		return res.Msg, nil
	}
	if device == "" || otherDevice.Msg.DeviceToken == "" {
		t.Fatal("no device token in the answers")
	}
	for i := range 10 {
		_, err := logIn(fmt.Sprintf("guess %d", i), "")
		wantCode(t, err, connect.CodeUnauthenticated)
	}
	_, err = logIn("correct horse", "")
	wantCode(t, err, connect.CodeResourceExhausted)
	forged := []byte(device)
	forged[len(forged)-2] ^= 1
	for _, d := range []string{"junk", string(forged), otherDevice.Msg.DeviceToken, device[:10] + "\n" + device[10:]} {
		_, err = logIn("correct horse", d)
		wantCode(t, err, connect.CodeResourceExhausted)
	}

	// The owner's device logs in, and keeps its token.
	res, err := logIn("correct horse", device)
	if err != nil {
		t.Fatalf("the owner's device: %v", err)
	}
	if res.DeviceToken != device || res.User.Id != signedUp.Msg.User.Id {
		t.Fatalf("got device token %q for %s, want %q for the owner", res.DeviceToken, res.User.Id, device)
	}
	// A new device token (from a log-in without one) works as well.
	e.exec(`DELETE FROM password_checks WHERE handle = $1`, handle)
	fresh, err := logIn("correct horse", "")
	if err != nil {
		t.Fatal(err)
	}
	if fresh.DeviceToken == "" || fresh.DeviceToken == device {
		t.Fatalf("a log-in without a device token got %q", fresh.DeviceToken)
	}
	// A device's own limit stops guessing through it.
	for i := range 10 {
		_, err := logIn(fmt.Sprintf("guess %d", i), fresh.DeviceToken)
		wantCode(t, err, connect.CodeUnauthenticated)
	}
	_, err = logIn("correct horse", fresh.DeviceToken)
	wantCode(t, err, connect.CodeResourceExhausted)
	if _, err := logIn("correct horse", device); err != nil {
		t.Fatalf("another device of the owner: %v", err)
	}
	// A token older than a year counts for none (made here as the server
	// makes them: user id, issue time, nonce, HMAC-SHA256 with the shared
	// key).
	var key []byte
	if err := e.db.Pool.QueryRow(ctx, `SELECT secret FROM server_secrets WHERE name = 'device_tokens'`).Scan(&key); err != nil {
		t.Fatal(err)
	}
	issuedAgo := func(age time.Duration) string {
		b := uuid.MustParse(signedUp.Msg.User.Id)
		signed := binary.BigEndian.AppendUint64(b[:], uint64(time.Now().Add(-age).Unix()))
		signed = append(signed, "a nonce!"...)
		mac := hmac.New(sha256.New, key)
		mac.Write(signed)
		return base64.RawURLEncoding.EncodeToString(append(signed, mac.Sum(nil)[:16]...))
	}
	for i := range 10 {
		_, err := logIn(fmt.Sprintf("guess %d", i), "")
		wantCode(t, err, connect.CodeUnauthenticated)
	}
	_, err = logIn("correct horse", issuedAgo(366*24*time.Hour))
	wantCode(t, err, connect.CodeResourceExhausted)
	if _, err := logIn("correct horse", issuedAgo(364*24*time.Hour)); err != nil {
		t.Fatalf("a device token issued 364 days ago: %v", err)
	}
}

// A sign-up of a taken handle whose password check fails (here the
// database refuses to record it) says so, not that the handle is taken.
func TestASignUpWhosePasswordCheckFailsSaysSo(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	taken := e.signUp()
	e.exec(`CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$`)
	e.exec(`CREATE TRIGGER refuse BEFORE INSERT ON password_checks FOR EACH ROW EXECUTE FUNCTION refuse()`)
	_, err := e.anonymous().Auth.SignUp(context.Background(), connect.NewRequest(&podsv1.SignUpRequest{
		Handle: taken.user.Handle, Password: "another password", DisplayName: "Test User", Timezone: "UTC"}))
	wantCode(t, err, connect.CodeInternal)
}

// A request far larger than any the API takes is refused before it is
// read in full (found by a review: a 128 MiB anonymous log-in was read and
// decoded); the largest real ones pass.
func TestAnOversizedRequestIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rpc.Config{})
	ctx := context.Background()
	_, err := e.anonymous().Auth.LogIn(ctx, connect.NewRequest(&podsv1.LogInRequest{
		Handle: "someone", Password: strings.Repeat("x", 1<<20)}))
	wantCode(t, err, connect.CodeResourceExhausted)

	author := e.signUp()
	pod := e.createPod(author, 4)
	e.send(author, pod.Id, "long", strings.Repeat("😀", 4000)) // 16,000 bytes
}
