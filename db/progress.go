package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// EventCheckInRecorded is the event kind of a new or changed check-in. Its
// payload is a CheckIn with the member's Streak under "streak".
const EventCheckInRecorded = "check_in_recorded"

// CheckIn is one member's check-in for one date in their time zone.
type CheckIn struct {
	PodID  string `json:"pod_id"`
	UserID string `json:"user_id"`
	// Date is YYYY-MM-DD.
	Date      string    `json:"date"`
	Done      bool      `json:"done"`
	Note      string    `json:"note"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Streak counts consecutive days with a done check-in.
type Streak struct {
	// Current is the run that reaches the member's today or yesterday.
	Current int `json:"current"`
	Longest int `json:"longest"`
}

// MemberProgress is one member's streak and recent check-ins in a pod.
type MemberProgress struct {
	UserID string
	// ReminderTime is HH:MM in the member's time zone.
	ReminderTime string
	Streak       Streak
	// Recent holds the check-ins of the last 30 local days, oldest first.
	Recent []CheckIn
}

const checkInColumns = `c.pod_id, c.user_id, to_char(c.date, 'YYYY-MM-DD'), c.done, c.note, c.updated_at`

func scanCheckIn(row pgx.Row) (CheckIn, error) {
	var c CheckIn
	err := row.Scan(&c.PodID, &c.UserID, &c.Date, &c.Done, &c.Note, &c.UpdatedAt)
	return c, err
}

// LocalToday returns today's date (YYYY-MM-DD) in the user's time zone, by
// the database's clock and time zone rules, which the triggers use too.
func LocalToday(ctx context.Context, q Querier, userID string) (string, error) {
	var today string
	err := q.QueryRow(ctx, `SELECT to_char(now() AT TIME ZONE timezone, 'YYYY-MM-DD') FROM users WHERE id = $1`,
		userID).Scan(&today)
	return today, translate(err, "reading local date")
}

// CheckInUpsert records a member's check-in for a date (YYYY-MM-DD) and
// returns it with the member's streak. Repeating it updates done and note;
// with both unchanged it writes nothing and emits no event. A pod the user
// is not a member of is ErrNotFound.
func CheckInUpsert(ctx context.Context, q Querier, c CheckIn) (CheckIn, Streak, error) {
	// A conflicting row left unchanged is not returned: read it back then.
	// The read checks the membership too, as a former member's rows remain.
	out, err := scanCheckIn(q.QueryRow(ctx, `
		INSERT INTO check_ins AS c (pod_id, user_id, date, done, note)
		SELECT $1, $2, $3::date, $4, $5
		WHERE EXISTS (SELECT 1 FROM memberships WHERE pod_id = $1 AND user_id = $2)
		ON CONFLICT (pod_id, user_id, date) DO UPDATE
		SET done = EXCLUDED.done, note = EXCLUDED.note, updated_at = now()
		WHERE c.done IS DISTINCT FROM EXCLUDED.done OR c.note IS DISTINCT FROM EXCLUDED.note
		RETURNING `+checkInColumns,
		c.PodID, c.UserID, c.Date, c.Done, c.Note))
	if errors.Is(err, pgx.ErrNoRows) {
		out, err = scanCheckIn(q.QueryRow(ctx, `SELECT `+checkInColumns+` FROM check_ins c
			JOIN memberships m ON m.pod_id = c.pod_id AND m.user_id = c.user_id
			WHERE c.pod_id = $1 AND c.user_id = $2 AND c.date = $3::date`, c.PodID, c.UserID, c.Date))
	}
	if err != nil {
		return CheckIn{}, Streak{}, translate(err, "recording check-in")
	}
	var s Streak
	err = q.QueryRow(ctx, `SELECT s.current, s.longest FROM users u,
		pods_streak($1, u.id, (now() AT TIME ZONE u.timezone)::date) s WHERE u.id = $2`,
		c.PodID, c.UserID).Scan(&s.Current, &s.Longest)
	return out, s, translate(err, "counting streak")
}

// Progress returns the streak and recent check-ins of every member of a
// pod but the coach, in the order they joined. Each member's streak and
// last 30 days are counted from today in their own time zone.
func Progress(ctx context.Context, q Querier, podID string) ([]MemberProgress, error) {
	rows, err := q.Query(ctx, `
		SELECT m.user_id, to_char(m.reminder_time, 'HH24:MI'), s.current, s.longest
		FROM memberships m
		JOIN users u ON u.id = m.user_id
		CROSS JOIN LATERAL pods_streak(m.pod_id, m.user_id, (now() AT TIME ZONE u.timezone)::date) s
		WHERE m.pod_id = $1 AND m.role <> 'coach'
		ORDER BY m.joined_seq`, podID)
	if err != nil {
		return nil, translate(err, "reading streaks")
	}
	members, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (MemberProgress, error) {
		var p MemberProgress
		err := r.Scan(&p.UserID, &p.ReminderTime, &p.Streak.Current, &p.Streak.Longest)
		return p, err
	})
	if err != nil {
		return nil, translate(err, "reading streaks")
	}
	byUser := make(map[string]*MemberProgress, len(members))
	for i := range members {
		byUser[members[i].UserID] = &members[i]
	}
	rows, err = q.Query(ctx, `SELECT `+checkInColumns+` FROM check_ins c
		JOIN memberships m ON m.pod_id = c.pod_id AND m.user_id = c.user_id AND m.role <> 'coach'
		JOIN users u ON u.id = c.user_id
		WHERE c.pod_id = $1 AND c.date > (now() AT TIME ZONE u.timezone)::date - 30
		ORDER BY c.date`, podID)
	if err != nil {
		return nil, translate(err, "reading check-ins")
	}
	defer rows.Close()
	for rows.Next() {
		c, err := scanCheckIn(rows)
		if err != nil {
			return nil, translate(err, "scanning check-in")
		}
		if p := byUser[c.UserID]; p != nil { // nil: joined after the first query
			p.Recent = append(p.Recent, c)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading check-ins: %w", err)
	}
	return members, nil
}

// SetReminderTime sets when (HH:MM, local) the coach reminds a member of a
// pod to check in. A pod the user is not a member of is ErrNotFound.
func SetReminderTime(ctx context.Context, q Querier, podID, userID, hhmm string) error {
	tag, err := q.Exec(ctx, `UPDATE memberships SET reminder_time = $3::time
		WHERE pod_id = $1 AND user_id = $2 AND role <> 'coach'`, podID, userID, hhmm)
	if err != nil {
		return translate(err, "setting reminder time")
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("setting reminder time: %w", ErrNotFound)
	}
	return nil
}
