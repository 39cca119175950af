package rpc

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/pods-dev/pods/db"
	"github.com/pods-dev/pods/rpc/convert"
	podsv1 "github.com/pods-dev/pods/rpc/gen/pods/v1"
	"github.com/pods-dev/pods/rpc/gen/pods/v1/podsv1connect"
)

// sessionLifetime is how long a token stays valid after sign-up or log-in.
const sessionLifetime = 30 * 24 * time.Hour

// newToken draws an opaque bearer token and returns it with the hash that
// is stored in its place.
func newToken() (token string, hash []byte) {
	b := make([]byte, 32)
	rand.Read(b)
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, tokenHash(token)
}

func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

type userIDKey struct{}
type sessionKey struct{}

// UserID returns the id of the authenticated user of a request.
func UserID(ctx context.Context) string {
	id, _ := ctx.Value(userIDKey{}).(string)
	return id
}

// sessionHash returns the token hash of the session of a request.
func sessionHash(ctx context.Context) []byte {
	hash, _ := ctx.Value(sessionKey{}).([]byte)
	return hash
}

// authInterceptor authenticates every call except sign-up and log-in with
// its bearer token, and puts the user's id and the session's token hash
// into the context.
type authInterceptor struct {
	pool              *db.Pool
	sessions          *sessionCache
	fromCache, fromDB prometheus.Counter // session lookups, by where the session was found
	logger            *slog.Logger
}

// newAuthInterceptor registers the lookup counters in reg.
func newAuthInterceptor(pool *db.Pool, sessions *sessionCache, reg prometheus.Registerer, logger *slog.Logger) *authInterceptor {
	lookups := promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "pods_session_lookups_total",
		Help: "Bearer tokens checked, by where the session was found: cache or database.",
	}, []string{"source"})
	return &authInterceptor{pool: pool, sessions: sessions, logger: logger,
		fromCache: lookups.WithLabelValues("cache"), fromDB: lookups.WithLabelValues("database")}
}

var publicProcedures = map[string]bool{
	podsv1connect.AuthServiceSignUpProcedure: true,
	podsv1connect.AuthServiceLogInProcedure:  true,
}

func (a *authInterceptor) authenticate(ctx context.Context, procedure string, header http.Header) (context.Context, error) {
	if publicProcedures[procedure] {
		return ctx, nil
	}
	token, ok := strings.CutPrefix(header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		return ctx, connect.NewError(connect.CodeUnauthenticated, errors.New("missing bearer token"))
	}
	hash := tokenHash(token)
	userID, gen, cached := a.sessions.get(hash)
	if cached {
		a.fromCache.Inc()
	} else {
		a.fromDB.Inc()
		var expiresAt time.Time
		var err error
		userID, expiresAt, err = db.SessionUser(ctx, a.pool, hash)
		if errors.Is(err, db.ErrNotFound) {
			return ctx, connect.NewError(connect.CodeUnauthenticated, errors.New("invalid or expired token"))
		}
		if err != nil {
			return ctx, toConnect(ctx, a.logger, err)
		}
		a.sessions.put(hash, gen, userID, expiresAt)
	}
	ctx = context.WithValue(ctx, userIDKey{}, userID)
	return context.WithValue(ctx, sessionKey{}, hash), nil
}

func (a *authInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		ctx, err := a.authenticate(ctx, req.Spec().Procedure, req.Header())
		if err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func (a *authInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (a *authInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		ctx, err := a.authenticate(ctx, conn.Spec().Procedure, conn.RequestHeader())
		if err != nil {
			return err
		}
		return next(ctx, conn)
	}
}

// authService implements AuthService.
type authService struct {
	*Server
}

// SignUp creates a user and logs them in. Repeating a sign-up with the same
// handle and password (a retry after a lost response) logs in again instead
// of failing.
func (s authService) SignUp(ctx context.Context, req *connect.Request[podsv1.SignUpRequest]) (*connect.Response[podsv1.SignUpResponse], error) {
	m := req.Msg
	handle, err := checkHandle(m.Handle)
	if err != nil {
		return nil, err
	}
	if n := len([]rune(m.Password)); n < minPasswordLen || n > maxPasswordLen {
		return nil, invalid("password", "must be 8 to 256 characters")
	}
	if err := checkLine("display_name", m.DisplayName, maxDisplayNameLen); err != nil {
		return nil, err
	}
	if err := checkTimezone(m.Timezone); err != nil {
		return nil, err
	}
	user, err := db.UserInsert(ctx, s.pool, db.UserInsertParams{
		Handle: handle, DisplayName: strings.TrimSpace(m.DisplayName), Timezone: m.Timezone,
		PasswordHash: hashPassword(m.Password, s.passwordMemoryKiB),
	})
	if errors.Is(err, db.ErrUnknownTimezone) {
		return nil, invalid("timezone", fmt.Sprintf("unknown time zone %q", m.Timezone))
	}
	if errors.Is(err, db.ErrAlreadyExists) {
		user, _, err = s.checkCredentials(ctx, handle, m.Password, "")
		if errors.Is(err, errBadCredentials) {
			return nil, connect.NewError(connect.CodeAlreadyExists, errors.New("handle is taken"))
		}
		if err != nil {
			return nil, err // too many checks, or the database failed
		}
	}
	if err != nil {
		return nil, toConnect(ctx, s.logger, err)
	}
	token, err := s.startSession(ctx, user.ID)
	if err != nil {
		return nil, err
	}
	device, err := s.devices.mint(ctx, user.ID)
	if err != nil {
		return nil, toConnect(ctx, s.logger, err)
	}
	return connect.NewResponse(&podsv1.SignUpResponse{Token: token, User: convert.User(user), DeviceToken: device}), nil
}

// LogIn checks a handle and password and starts a session.
func (s authService) LogIn(ctx context.Context, req *connect.Request[podsv1.LogInRequest]) (*connect.Response[podsv1.LogInResponse], error) {
	handle, err := checkHandle(req.Msg.Handle)
	if err != nil {
		return nil, errBadCredentials // no such handle can exist
	}
	user, knownDevice, err := s.checkCredentials(ctx, handle, req.Msg.Password, req.Msg.DeviceToken)
	if err != nil {
		return nil, err
	}
	token, err := s.startSession(ctx, user.ID)
	if err != nil {
		return nil, err
	}
	device := req.Msg.DeviceToken
	if !knownDevice {
		if device, err = s.devices.mint(ctx, user.ID); err != nil {
			return nil, toConnect(ctx, s.logger, err)
		}
	}
	return connect.NewResponse(&podsv1.LogInResponse{Token: token, User: convert.User(user), DeviceToken: device}), nil
}

// LogOut revokes the token of the call at once.
func (s authService) LogOut(ctx context.Context, _ *connect.Request[podsv1.LogOutRequest]) (*connect.Response[podsv1.LogOutResponse], error) {
	hash := sessionHash(ctx)
	if err := db.SessionDelete(ctx, s.pool, hash); err != nil {
		return nil, toConnect(ctx, s.logger, err)
	}
	s.auth.sessions.SessionRevoked(hash) // the listener's notice may come later
	return connect.NewResponse(&podsv1.LogOutResponse{}), nil
}

var errBadCredentials = connect.NewError(connect.CodeUnauthenticated, errors.New("wrong handle or password"))

// checkCredentials returns the user of handle if password is theirs, and
// whether device is a device token of theirs. It refuses with
// resource_exhausted beyond passwordCheckBurst failed checks in a short
// time, on all nodes together: of the handle, or, with a device token of
// the handle's user, of that device.
func (s authService) checkCredentials(ctx context.Context, handle, password, device string) (db.User, bool, error) {
	bucket, user, err := s.passwordBucket(ctx, handle, device)
	if err != nil {
		return db.User{}, false, err
	}
	if err := s.passwordChecks.take(ctx, bucket); err != nil {
		return db.User{}, false, err
	}
	if user == nil {
		u, err := db.UserByHandle(ctx, s.pool, handle)
		if err != nil && !errors.Is(err, db.ErrNotFound) {
			return db.User{}, false, toConnect(ctx, s.logger, err)
		}
		user = &u
	}
	if user.PasswordHash == "" { // no such user (or the coach)
		return db.User{}, false, errBadCredentials
	}
	ok, err := checkPassword(password, user.PasswordHash)
	if err != nil {
		return db.User{}, false, toConnect(ctx, s.logger, err)
	}
	if !ok {
		return db.User{}, false, errBadCredentials
	}
	s.passwordChecks.refund(ctx, bucket)
	return *user, bucket != handle, nil
}

// passwordBucket names the bucket of failed password checks a log-in
// counts against: the device's if device is a device token of handle's
// user (then it returns that user too, read to know), else the handle's.
// A device's bucket is named after its token's hash; handles hold no ':',
// so the names cannot meet.
func (s authService) passwordBucket(ctx context.Context, handle, device string) (string, *db.User, error) {
	owner, ok, err := s.devices.user(ctx, device)
	if err != nil {
		return "", nil, toConnect(ctx, s.logger, err)
	}
	if !ok {
		return handle, nil, nil
	}
	user, err := db.UserByHandle(ctx, s.pool, handle)
	if errors.Is(err, db.ErrNotFound) || err == nil && user.ID != owner {
		return handle, nil, nil
	}
	if err != nil {
		return "", nil, toConnect(ctx, s.logger, err)
	}
	return "device:" + hex.EncodeToString(tokenHash(device)[:16]), &user, nil
}

func (s authService) startSession(ctx context.Context, userID string) (string, error) {
	token, hash := newToken()
	if err := db.SessionInsert(ctx, s.pool, hash, userID, time.Now().Add(sessionLifetime)); err != nil {
		return "", toConnect(ctx, s.logger, err)
	}
	return token, nil
}
