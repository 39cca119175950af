-- Presence: who is online, shared by every server node.
--
-- Each node holds a lease in nodes, renewed every few seconds, and records
-- each open stream in presence_streams. A user is online while they have a
-- stream on a node whose lease is live. presence holds the state last
-- announced for each user, so that every change is announced exactly once
-- (NOTIFY pods_presence), whichever node makes it: going online when the
-- first stream opens; going offline when a node's sweep, under an advisory
-- lock, finds no live stream for longer than the grace period, or the
-- user's node dead.

-- +goose Up
CREATE TABLE nodes (
    id          text PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz NOT NULL
);

CREATE TABLE presence_streams (
    node_id   text NOT NULL REFERENCES nodes ON DELETE CASCADE,
    stream_id uuid NOT NULL,
    user_id   uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    opened_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node_id, stream_id)
);
CREATE INDEX presence_streams_user_id ON presence_streams (user_id);

CREATE TABLE presence (
    user_id     uuid PRIMARY KEY REFERENCES users ON DELETE CASCADE,
    online      boolean NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    -- When a stream of the user last opened and closed: a sweep leaves a
    -- user online within the grace period after either.
    last_opened timestamptz NOT NULL DEFAULT now(),
    last_closed timestamptz
);
CREATE INDEX presence_online ON presence (user_id) WHERE online;

-- +goose StatementBegin
-- presence_announce tells every node that a user came online or went
-- offline. The payload names the user's pods, so that nodes need no query
-- to find whom to tell: "<1|0>:<user id>:<pod id>,<pod id>,...".
CREATE FUNCTION presence_announce(p_user uuid, p_online boolean) RETURNS void
LANGUAGE sql AS $$
    SELECT pg_notify('pods_presence',
        CASE WHEN p_online THEN '1' ELSE '0' END || ':' || p_user || ':' ||
        coalesce((SELECT string_agg(pod_id::text, ',') FROM memberships WHERE user_id = p_user), ''))
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION presence_announce;
DROP TABLE presence;
DROP TABLE presence_streams;
DROP TABLE nodes;
