package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// User is a person using Pods, or a pod's coach.
type User struct {
	ID          string
	Handle      string
	DisplayName string
	Timezone    string
	Coach       bool
	// PasswordHash is the argon2id PHC string; empty for the coach.
	PasswordHash string
	CreatedAt    time.Time
}

// userColumns are the columns scanUser reads, from a table aliased u.
const userColumns = `u.id, u.handle, u.display_name, u.timezone, u.coach, coalesce(u.password_hash, ''), u.created_at`

func scanUser(row interface{ Scan(...any) error }) (User, error) {
	var u User
	err := row.Scan(&u.ID, &u.Handle, &u.DisplayName, &u.Timezone, &u.Coach, &u.PasswordHash, &u.CreatedAt)
	return u, err
}

// UserInsertParams are the fields of a new user.
type UserInsertParams struct {
	Handle       string
	DisplayName  string
	Timezone     string
	PasswordHash string
}

// ErrUnknownTimezone means the database does not know a time zone (its
// zone data may be older than the caller's).
var ErrUnknownTimezone = errors.New("time zone unknown to the database")

// UserInsert stores a new user. A taken handle is ErrAlreadyExists; a time
// zone the database does not know is ErrUnknownTimezone, as reminders are
// computed there.
func UserInsert(ctx context.Context, q Querier, p UserInsertParams) (User, error) {
	u, err := scanUser(q.QueryRow(ctx, `
		INSERT INTO users AS u (handle, display_name, timezone, password_hash)
		SELECT $1, $2, $3, $4 WHERE (now() AT TIME ZONE $3::text) IS NOT NULL
		RETURNING `+userColumns,
		p.Handle, p.DisplayName, p.Timezone, p.PasswordHash))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "22023" { // invalid_parameter_value: the zone
		return User{}, fmt.Errorf("inserting user: %w: %q", ErrUnknownTimezone, p.Timezone)
	}
	return u, translate(err, "inserting user")
}

// UserByHandle finds a user by handle.
func UserByHandle(ctx context.Context, q Querier, handle string) (User, error) {
	u, err := scanUser(q.QueryRow(ctx, `SELECT `+userColumns+` FROM users u WHERE handle = $1`, handle))
	return u, translate(err, "finding user by handle")
}

// UserByID finds a user by id.
func UserByID(ctx context.Context, q Querier, id string) (User, error) {
	u, err := scanUser(q.QueryRow(ctx, `SELECT `+userColumns+` FROM users u WHERE id = $1`, id))
	return u, translate(err, "finding user")
}
