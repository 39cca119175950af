-- The core of Pods: people and their sessions, pods and who is in them, what
-- they say and react with, and their daily check-ins. Every row hangs off a
-- user or a pod with ON DELETE CASCADE, so deleting either leaves no orphan.

-- +goose Up
CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    handle        text NOT NULL UNIQUE,
    display_name  text NOT NULL,
    timezone      text NOT NULL,
    -- argon2id in PHC string form; NULL for the coach, who never logs in.
    password_hash text,
    coach         boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Bearer tokens, stored only as their SHA-256. Logging out deletes the row.
CREATE TABLE sessions (
    token_hash bytea PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_user_id ON sessions (user_id);

CREATE TABLE pods (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text NOT NULL,
    habit           text NOT NULL,
    capacity        int NOT NULL DEFAULT 6 CHECK (capacity BETWEEN 4 AND 6),
    invite_code     text NOT NULL UNIQUE,
    owner_id        uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    -- Makes CreatePod retries return the first pod (NULL: no key given).
    idempotency_key text,
    -- The seq of the pod's newest event; bumped by every event in the same
    -- transaction, so writers of one pod serialize here and commit order is
    -- seq order.
    last_seq        bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (owner_id, idempotency_key)
);
CREATE INDEX pods_owner_id ON pods (owner_id);

CREATE TABLE memberships (
    pod_id     uuid NOT NULL REFERENCES pods ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('owner', 'member', 'coach')),
    joined_at  timestamptz NOT NULL DEFAULT now(),
    -- The seq of this member's memberJoined event.
    joined_seq bigint NOT NULL DEFAULT 0,
    -- The member's read cursor: only ever moves forward.
    read_seq   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (pod_id, user_id)
);
CREATE INDEX memberships_user_id ON memberships (user_id);

-- Messages are deleted for good (no soft delete): a deleted message's text
-- must leave the history, and its events are scrubbed by a trigger.
CREATE TABLE messages (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    pod_id          uuid NOT NULL REFERENCES pods ON DELETE CASCADE,
    -- The seq of the messageCreated event, set by a trigger.
    seq             bigint NOT NULL DEFAULT 0,
    author_id       uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    idempotency_key text NOT NULL,
    body            text NOT NULL,
    humor           boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    edited_at       timestamptz,
    CONSTRAINT messages_idempotency UNIQUE (author_id, idempotency_key),
    UNIQUE (pod_id, seq)
);

CREATE TABLE reactions (
    message_id uuid NOT NULL REFERENCES messages ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    emoji      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, user_id, emoji)
);
CREATE INDEX reactions_user_id ON reactions (user_id);

-- One row per member, pod and local date (in the member's time zone).
CREATE TABLE check_ins (
    pod_id     uuid NOT NULL REFERENCES pods ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    date       date NOT NULL,
    done       boolean NOT NULL,
    note       text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pod_id, user_id, date)
);
CREATE INDEX check_ins_user_id ON check_ins (user_id);

-- +goose Down
DROP TABLE check_ins;
DROP TABLE reactions;
DROP TABLE messages;
DROP TABLE memberships;
DROP TABLE pods;
DROP TABLE sessions;
DROP TABLE users;
