package db

import (
	"context"
	"time"
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

// UserInsert stores a new user. A taken handle is ErrAlreadyExists.
func UserInsert(ctx context.Context, q Querier, p UserInsertParams) (User, error) {
	u, err := scanUser(q.QueryRow(ctx, `
		INSERT INTO users AS u (handle, display_name, timezone, password_hash)
		VALUES ($1, $2, $3, $4)
		RETURNING `+userColumns,
		p.Handle, p.DisplayName, p.Timezone, p.PasswordHash))
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
