package db

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// CoachUserID is the id of the coach, the bot member of every pod.
const CoachUserID = "c0ac0000-0000-4000-8000-000000000001"

// Event kinds of the coach: an intervention, and the owner switching the
// coach on or off (payload: {"enabled": bool}).
const (
	EventCoachIntervened = "coach_intervened"
	EventCoachSwitched   = "coach_switched"
)

// Coach job kinds, which are also the triggers of interventions.
const (
	JobQuiet    = "quiet"
	JobConflict = "conflict"
	JobReminder = "reminder"
)

// CoachLock runs fn in a READ COMMITTED transaction (see WriteHorizon)
// holding the coach scheduler's lock, or not at all (returning false) if
// another node holds it.
func CoachLock(ctx context.Context, pool *Pool, fn func(tx Tx) error) (bool, error) {
	var locked bool
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx Tx) error {
		err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(hashtext('pods.coach_scheduler'))`).Scan(&locked)
		if err != nil || !locked {
			return err
		}
		return fn(tx)
	})
	return locked, translate(err, "scheduling coach jobs")
}

// EnqueueQuietJobs adds a quiet job for every pod with the coach on where
// no member has written since quietAfter before now (deleting a message
// does not count: see pods.spoke_seq). The job key names the last member
// message, so a pod gets one nudge per quiet spell; a pod nudged for its
// spell already is skipped by its key (see EnqueueReminderJobs).
func EnqueueQuietJobs(ctx context.Context, q Querier, now time.Time, quietAfter time.Duration) (int64, error) {
	tag, err := q.Exec(ctx, `
		INSERT INTO coach_jobs (key, pod_id, kind, payload, run_at)
		SELECT key.key, p.id, 'quiet', jsonb_build_object('last_seq', p.spoke_seq), $1::timestamptz
		FROM pods p
		CROSS JOIN LATERAL (SELECT 'quiet:' || p.id || ':' || p.spoke_seq AS key) key
		WHERE p.coach_enabled AND coalesce(p.spoke_at, p.created_at) < $1::timestamptz - $2::interval
		  AND NOT EXISTS (SELECT 1 FROM coach_jobs j WHERE j.key = key.key)
		ON CONFLICT (key) DO NOTHING`, now, quietAfter)
	return tag.RowsAffected(), translate(err, "enqueueing quiet jobs")
}

// EnqueueReminderJobs adds a reminder job for every member, of a pod with
// the coach on, whose local time (in their own time zone) is past their
// reminder time, who was a member then (one who joins later in the day is
// not greeted with a reminder), and who has not checked in for their local
// date (done or not: a member who said they did not do it today is not
// nagged). The key names the local date: one reminder per member, pod and
// day.
//
// The scan runs every few seconds and finds most due members already
// reminded: looking their key up first skips building the row and the
// insert's conflict handling, which also takes a value of the jobs'
// sequence (measured: 87 → 40 ms a scan of 14,400 reminded members).
func EnqueueReminderJobs(ctx context.Context, q Querier, now time.Time) (int64, error) {
	tag, err := q.Exec(ctx, `
		INSERT INTO coach_jobs (key, pod_id, kind, payload, run_at)
		SELECT key.key, m.pod_id, 'reminder', jsonb_build_object('user_id', m.user_id, 'date', local.iso), $1
		FROM memberships m
		JOIN users u ON u.id = m.user_id
		JOIN pods p ON p.id = m.pod_id AND p.coach_enabled
		CROSS JOIN LATERAL (SELECT ($1::timestamptz AT TIME ZONE u.timezone) AS at) t
		CROSS JOIN LATERAL (SELECT t.at::date AS day, to_char(t.at, 'YYYY-MM-DD') AS iso) local
		CROSS JOIN LATERAL (SELECT 'reminder:' || m.pod_id || ':' || m.user_id || ':' || local.iso AS key) key
		WHERE m.role <> 'coach' AND t.at::time >= m.reminder_time
		  AND m.joined_at <= (local.day + m.reminder_time) AT TIME ZONE u.timezone
		  AND NOT EXISTS (SELECT 1 FROM coach_jobs j WHERE j.key = key.key)
		  AND NOT EXISTS (SELECT 1 FROM check_ins c
		                  WHERE c.pod_id = m.pod_id AND c.user_id = m.user_id AND c.date = local.day)
		ON CONFLICT (key) DO NOTHING`, now)
	return tag.RowsAffected(), translate(err, "enqueueing reminder jobs")
}

// PruneCoachJobs deletes up to limit done jobs that ran before before and
// whose key cannot come back, so that the table does not grow for good (a
// reminder a member a day). before must be past every scan's reach: a
// reminder's key names a local date, a conflict's blocks the pod for the
// cooldown; a quiet job's names the pod's spoke_seq, which only grows, so
// one goes once its pod has spoken since.
func PruneCoachJobs(ctx context.Context, q Querier, before time.Time, limit int) (int64, error) {
	tag, err := q.Exec(ctx, `
		DELETE FROM coach_jobs WHERE id IN (
			SELECT j.id FROM coach_jobs j JOIN pods p ON p.id = j.pod_id
			WHERE j.done_at IS NOT NULL AND j.run_at < $1
			  AND CASE WHEN j.kind = 'quiet' THEN split_part(j.key, ':', 3)::bigint < p.spoke_seq ELSE true END
			LIMIT $2)`, before, limit)
	return tag.RowsAffected(), translate(err, "pruning coach jobs")
}

// UnscoredMessage is a recent message the hostility scorer has not seen.
type UnscoredMessage struct {
	ID, PodID, Body string
	// CreatedAt is when the message was written, or last edited.
	CreatedAt time.Time
}

// WriteHorizon returns a time that every message not yet visible will be
// stamped at or after, provided no transaction that writes messages lasts
// longer than slack: created_at and edited_at are their transaction's
// start, so it is the start of this database's oldest open transaction,
// but no earlier than slack ago (a backup's long transaction does not hold
// it back). The caller's own transaction counts, so a transaction that
// starts after this read is stamped after the horizon too. Where some
// sessions cannot be seen (another role's without pg_read_all_stats, or
// track_activities off) it is slack ago. Run it in a READ COMMITTED
// transaction, as its own statement before the reads it bounds, so that
// any transaction it did not see is visible to them.
func WriteHorizon(ctx context.Context, q Querier, slack time.Duration) (time.Time, error) {
	var horizon time.Time
	err := q.QueryRow(ctx, `
		SELECT CASE WHEN bool_or(state IS NULL OR state = 'disabled') THEN now() - $1::interval
		            ELSE greatest(now() - $1::interval, min(xact_start)) END
		FROM pg_stat_activity -- a session hidden from this role shows nulls only
		WHERE datname = current_database() AND (backend_type = 'client backend' OR backend_type IS NULL)`, slack).Scan(&horizon)
	return horizon, translate(err, "reading the write horizon")
}

// UnscoredMessages returns up to limit messages written or edited at or
// after since by members (not the coach), not flagged humor and not scored yet
// (an edit forgets the score), oldest first. It share-locks them until the
// transaction ends, so that an edit waits for their scores to be saved and
// then forgets them, rather than having a score of its old text saved after.
func UnscoredMessages(ctx context.Context, q Querier, since time.Time, limit int) ([]UnscoredMessage, error) {
	rows, err := q.Query(ctx, `
		SELECT m.id, m.pod_id, m.body, greatest(m.created_at, m.edited_at) AS at FROM messages m
		WHERE (m.created_at >= $1 OR m.edited_at >= $1) AND m.author_id <> $2 AND NOT m.humor
		  AND NOT EXISTS (SELECT 1 FROM message_scores s WHERE s.message_id = m.id)
		ORDER BY at LIMIT $3 FOR SHARE OF m`, since, CoachUserID, limit)
	if err != nil {
		return nil, translate(err, "reading unscored messages")
	}
	msgs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[UnscoredMessage])
	return msgs, translate(err, "reading unscored messages")
}

// MessageScore is the hostility score of one message.
type MessageScore struct {
	MessageID string  `json:"message_id"`
	Compound  float64 `json:"compound"`
	Hostility float64 `json:"hostility"`
	Hostile   bool    `json:"hostile"`
}

// SaveScores stores scores of messages read by UnscoredMessages.
func SaveScores(ctx context.Context, q Querier, msgs []UnscoredMessage, scores []MessageScore) error {
	n := len(msgs)
	ids, pods, created := make([]string, n), make([]string, n), make([]time.Time, n)
	compound, hostility, hostile := make([]float64, n), make([]float64, n), make([]bool, n)
	for i, m := range msgs {
		ids[i], pods[i], created[i] = m.ID, m.PodID, m.CreatedAt
		compound[i], hostility[i], hostile[i] = scores[i].Compound, scores[i].Hostility, scores[i].Hostile
	}
	_, err := q.Exec(ctx, `
		INSERT INTO message_scores (message_id, pod_id, compound, hostility, hostile, created_at)
		SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::float8[], $4::float8[], $5::bool[], $6::timestamptz[])
		ON CONFLICT DO NOTHING`, ids, pods, compound, hostility, hostile, created)
	return translate(err, "saving scores")
}

// RecentScores returns the scores of a pod's last n scored messages
// written or edited since since, and after the coach was last switched on
// or off (what was said while it was off is not its business), newest
// (highest seq) first. Messages deleted since are gone.
func RecentScores(ctx context.Context, q Querier, podID string, since time.Time, n int) ([]MessageScore, error) {
	rows, err := q.Query(ctx, `
		SELECT s.message_id, s.compound, s.hostility, s.hostile FROM message_scores s
		JOIN messages m ON m.id = s.message_id
		WHERE s.pod_id = $1 AND s.created_at > $2
		  AND m.seq > coalesce((SELECT max(seq) FROM events WHERE pod_id = $1 AND kind = 'coach_switched'), 0)
		ORDER BY m.seq DESC LIMIT $3`, podID, since, n)
	if err != nil {
		return nil, translate(err, "reading scores")
	}
	scores, err := pgx.CollectRows(rows, pgx.RowToStructByPos[MessageScore])
	return scores, translate(err, "reading scores")
}

// EnqueueConflictJob adds a conflict job for a pod, keyed by the message
// that completed the hostile run, unless the pod had one since
// cooldownSince or its coach is off.
func EnqueueConflictJob(ctx context.Context, q Querier, podID string, now, cooldownSince time.Time, scores []MessageScore) (bool, error) {
	payload, err := json.Marshal(map[string]any{"scores": scores})
	if err != nil {
		return false, err
	}
	tag, err := q.Exec(ctx, `
		INSERT INTO coach_jobs (key, pod_id, kind, payload, run_at)
		SELECT 'conflict:' || $1::uuid || ':' || $2, $1, 'conflict', $3, $4
		FROM pods p WHERE p.id = $1 AND p.coach_enabled
		  AND NOT EXISTS (SELECT 1 FROM coach_jobs j WHERE j.pod_id = $1 AND j.kind = 'conflict' AND j.run_at > $5)
		ON CONFLICT (key) DO NOTHING`, podID, scores[0].MessageID, payload, now, cooldownSince)
	return tag.RowsAffected() == 1, translate(err, "enqueueing conflict job")
}

// CoachJob is a claimed job.
type CoachJob struct {
	ID       int64
	Key      string
	PodID    string
	Kind     string
	Payload  []byte
	Attempts int
}

// ClaimCoachJobs locks up to limit due jobs for lease, skipping jobs other
// workers hold, and counts the attempt.
func ClaimCoachJobs(ctx context.Context, q Querier, now time.Time, lease time.Duration, limit int) ([]CoachJob, error) {
	rows, err := q.Query(ctx, `
		UPDATE coach_jobs j SET locked_until = $1 + $2::interval, attempts = attempts + 1
		WHERE id IN (
			SELECT id FROM coach_jobs
			WHERE done_at IS NULL AND run_at <= $1 AND (locked_until IS NULL OR locked_until < $1)
			ORDER BY run_at LIMIT $3 FOR UPDATE SKIP LOCKED)
		RETURNING id, key, pod_id, kind, payload, attempts`, now, lease, limit)
	if err != nil {
		return nil, translate(err, "claiming coach jobs")
	}
	jobs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[CoachJob])
	return jobs, translate(err, "claiming coach jobs")
}

// CoachJobRelease gives a claimed job back, with its attempt: a node that
// shuts down in the middle of it lets the next claim have it at once. A
// job claimed again since (its lease ran out) is left to its new claim.
func CoachJobRelease(ctx context.Context, q Querier, job CoachJob) error {
	_, err := q.Exec(ctx, `UPDATE coach_jobs SET locked_until = NULL, attempts = attempts - 1
		WHERE id = $1 AND attempts = $2 AND done_at IS NULL`, job.ID, job.Attempts)
	return translate(err, "releasing coach job")
}

// CoachJobFailed records a failed attempt: the job runs again after
// retryAt, or never if it has used its attempts.
func CoachJobFailed(ctx context.Context, q Querier, id int64, cause error, retryAt time.Time, final bool) error {
	_, err := q.Exec(ctx, `
		UPDATE coach_jobs SET last_error = $2, locked_until = $3,
			done_at = CASE WHEN $4 THEN now() END
		WHERE id = $1 AND done_at IS NULL`, id, cause.Error(), retryAt, final)
	return translate(err, "recording job failure")
}

// Intervention is what the coach said for a job and how.
type Intervention struct {
	Job       CoachJob
	Body      string
	Source    string // "model" or "offline"
	LatencyMS int
	Scores    []byte // JSON, for conflicts
}

// ErrJobDone means another run of a coach job completed it first, or that
// what called for it is over (see CoachJobDue).
var ErrJobDone = errors.New("coach job already done")

// CoachJobSkip completes a job that is no longer due, without a message.
func CoachJobSkip(ctx context.Context, q Querier, id int64) error {
	_, err := q.Exec(ctx, `UPDATE coach_jobs SET done_at = now(), last_error = 'no longer due'
		WHERE id = $1 AND done_at IS NULL`, id)
	return translate(err, "skipping coach job")
}

// CoachJobDue tells whether what called for a job still holds: the pod
// still has the coach on; for a quiet job, no member has written since it
// was queued; for a reminder, the member is still in the pod and has not
// checked in for that day. A conflict, once seen, stays due.
func CoachJobDue(ctx context.Context, q Querier, job CoachJob) (bool, error) {
	var due bool
	err := q.QueryRow(ctx, `
		SELECT p.coach_enabled AND CASE $2
			WHEN 'quiet' THEN p.spoke_seq <= coalesce(($3::jsonb ->> 'last_seq')::bigint, split_part($4, ':', 3)::bigint)
			WHEN 'reminder' THEN EXISTS (
				SELECT 1 FROM memberships ms WHERE ms.pod_id = p.id AND ms.user_id = ($3::jsonb ->> 'user_id')::uuid)
			  AND NOT EXISTS (
				SELECT 1 FROM check_ins c WHERE c.pod_id = p.id AND c.user_id = ($3::jsonb ->> 'user_id')::uuid
				  AND c.date = ($3::jsonb ->> 'date')::date)
			ELSE true END
		FROM pods p WHERE p.id = $1`, job.PodID, job.Kind, job.Payload, job.Key).Scan(&due)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil // the pod is gone
	}
	return due, translate(err, "checking coach job")
}

// Intervene posts the coach's message for a job, with its coachIntervened
// event and its record, and completes the job, all in one transaction that
// holds the job's row: of two runs of a job (a lease that ran out), the
// second finds it done and gets ErrJobDone. A job no longer due (see
// CoachJobDue) is completed without a message, also with ErrJobDone. The message's idempotency key
// comes from the job key as well.
func Intervene(ctx context.Context, pool *Pool, iv Intervention, idempotencyKey string) (Message, error) {
	var msg Message
	var over bool // the job is no longer due, and now done
	err := InTx(ctx, pool, func(tx Tx) error {
		var done bool
		if err := tx.QueryRow(ctx, `SELECT done_at IS NOT NULL FROM coach_jobs WHERE id = $1 FOR UPDATE`,
			iv.Job.ID).Scan(&done); err != nil {
			return translate(err, "locking job")
		}
		if !done {
			due, err := CoachJobDue(ctx, tx, iv.Job)
			if err != nil {
				return err
			}
			if !due {
				over = true
				return CoachJobSkip(ctx, tx, iv.Job.ID)
			}
		}
		if done {
			return ErrJobDone
		}
		var err error
		msg, err = MessageSend(ctx, tx, MessageSendParams{
			PodID: iv.Job.PodID, AuthorID: CoachUserID, IdempotencyKey: idempotencyKey, Body: iv.Body,
		})
		if err != nil {
			return err
		}
		var recorded bool
		err = tx.QueryRow(ctx, `
			WITH rec AS (
				INSERT INTO coach_interventions (job_key, pod_id, trigger, message_id, scores, source, latency_ms)
				VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (job_key) DO NOTHING RETURNING 1)
			SELECT EXISTS (SELECT 1 FROM rec)`,
			iv.Job.Key, iv.Job.PodID, iv.Job.Kind, msg.ID, iv.Scores, iv.Source, iv.LatencyMS).Scan(&recorded)
		if err != nil {
			return translate(err, "recording intervention")
		}
		if recorded {
			if _, err := tx.Exec(ctx, `SELECT pods_emit($1, $2, $3, $4, jsonb_build_object('message_id', $3::uuid, 'trigger', $5::text))`,
				iv.Job.PodID, EventCoachIntervened, msg.ID, CoachUserID, iv.Job.Kind); err != nil {
				return translate(err, "emitting coachIntervened")
			}
		}
		_, err = tx.Exec(ctx, `UPDATE coach_jobs SET done_at = now(), last_error = NULL WHERE id = $1`, iv.Job.ID)
		return translate(err, "completing job")
	})
	if err == nil && over {
		return Message{}, ErrJobDone
	}
	return msg, err
}

// CoachContext is what the coach knows of a pod when it speaks.
type CoachContext struct {
	PodName, Habit string
	// The last messages, oldest first, with their authors' names.
	Recent []ContextMessage
}

// ContextMessage is one line of recent conversation.
type ContextMessage struct {
	Author string
	Coach  bool
	Body   string
	Humor  bool // flagged as a joke
	// Hostile: the scorer found it hostile (false while it is unscored).
	Hostile bool
}

// LoadCoachContext reads a pod's habit and its last n messages.
func LoadCoachContext(ctx context.Context, q Querier, podID string, n int) (CoachContext, error) {
	var c CoachContext
	if err := q.QueryRow(ctx, `SELECT name, habit FROM pods WHERE id = $1`, podID).Scan(&c.PodName, &c.Habit); err != nil {
		return c, translate(err, "reading pod")
	}
	rows, err := q.Query(ctx, `
		SELECT * FROM (
			SELECT u.display_name, u.coach, m.body, m.humor, coalesce(s.hostile, false), m.seq
			FROM messages m JOIN users u ON u.id = m.author_id
			LEFT JOIN message_scores s ON s.message_id = m.id
			WHERE m.pod_id = $1 ORDER BY m.seq DESC LIMIT $2) last
		ORDER BY seq`, podID, n)
	if err != nil {
		return c, translate(err, "reading recent messages")
	}
	var seq int64
	var line ContextMessage
	_, err = pgx.ForEachRow(rows, []any{&line.Author, &line.Coach, &line.Body, &line.Humor, &line.Hostile, &seq}, func() error {
		c.Recent = append(c.Recent, line)
		return nil
	})
	return c, translate(err, "reading recent messages")
}

// DisplayName returns a user's display name.
func DisplayName(ctx context.Context, q Querier, userID string) (string, error) {
	var name string
	err := q.QueryRow(ctx, `SELECT display_name FROM users WHERE id = $1`, userID).Scan(&name)
	return name, translate(err, "reading display name")
}
