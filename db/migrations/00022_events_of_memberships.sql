-- +goose NO TRANSACTION
-- A stream resumed from a cursor before the user's current membership asks
-- whether the user was a member right after it (db.MemberAfter): their
-- joins and leaves of the pod, found without reading its whole log. Built
-- concurrently, so that writes go on while it builds on a large log.

-- +goose Up
CREATE INDEX CONCURRENTLY IF NOT EXISTS events_memberships ON events (pod_id, user_id, seq)
    WHERE kind IN ('member_joined', 'member_left');

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS events_memberships;
