-- The coach: a bot user that is a member of every pod, and the durable
-- jobs through which it speaks.
--
-- Jobs live in coach_jobs, keyed by what triggered them (a quiet spell, a
-- run of hostile messages, a missed check-in), so that a trigger seen by
-- several nodes, or twice, is one job. Workers claim jobs with FOR UPDATE
-- SKIP LOCKED; the coach's message, its coachIntervened event, the
-- intervention record and the job's completion commit together, and the
-- message's idempotency key comes from the job key: a job can never post
-- twice.

-- +goose Up
INSERT INTO users (id, handle, display_name, timezone, coach)
VALUES ('c0ac0000-0000-4000-8000-000000000001', 'coach', 'Coach', 'UTC', true);

ALTER TABLE pods ADD COLUMN coach_enabled boolean NOT NULL DEFAULT true;

INSERT INTO memberships (pod_id, user_id, role)
SELECT p.id, u.id, 'coach' FROM pods p CROSS JOIN users u WHERE u.coach;

-- For the scorer's scan of recent messages.
CREATE INDEX messages_created_at ON messages (created_at);

-- The hostility score of each recent message not flagged humor.
CREATE TABLE message_scores (
    message_id uuid PRIMARY KEY REFERENCES messages ON DELETE CASCADE,
    pod_id     uuid NOT NULL REFERENCES pods ON DELETE CASCADE,
    -- VADER's compound sentiment, -1 to 1.
    compound   double precision NOT NULL,
    -- Hostility, 0 to 1, and whether it passed the threshold.
    hostility  double precision NOT NULL,
    hostile    boolean NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX message_scores_pod ON message_scores (pod_id, created_at);

CREATE TABLE coach_jobs (
    id           bigserial PRIMARY KEY,
    -- What triggered the job, e.g. quiet:<pod>:<last seq>; unique.
    key          text NOT NULL UNIQUE,
    pod_id       uuid NOT NULL REFERENCES pods ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('quiet', 'conflict', 'reminder')),
    payload      jsonb NOT NULL DEFAULT '{}',
    run_at       timestamptz NOT NULL,
    attempts     int NOT NULL DEFAULT 0,
    locked_until timestamptz,
    done_at      timestamptz,
    last_error   text
);
CREATE INDEX coach_jobs_due ON coach_jobs (run_at) WHERE done_at IS NULL;
CREATE INDEX coach_jobs_pod ON coach_jobs (pod_id, kind, run_at);

CREATE TABLE coach_interventions (
    id         bigserial PRIMARY KEY,
    job_key    text NOT NULL UNIQUE,
    pod_id     uuid NOT NULL REFERENCES pods ON DELETE CASCADE,
    trigger    text NOT NULL,
    message_id uuid REFERENCES messages ON DELETE SET NULL,
    -- The scores that triggered a conflict intervention.
    scores     jsonb,
    -- 'model' or 'offline', and how long the answer took.
    source     text NOT NULL,
    latency_ms int NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE coach_interventions;
DROP TABLE coach_jobs;
DROP TABLE message_scores;
DROP INDEX messages_created_at;
DELETE FROM memberships WHERE role = 'coach';
ALTER TABLE pods DROP COLUMN coach_enabled;
DELETE FROM users WHERE coach;
