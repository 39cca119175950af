-- +goose NO TRANSACTION
-- The conflict scan counts only messages after the pod's coach was last
-- switched (db.RecentScores): its last coachSwitched event, found without
-- reading the pod's whole log. Built concurrently, so that writes go on.

-- +goose Up
CREATE INDEX CONCURRENTLY IF NOT EXISTS events_coach_switched ON events (pod_id, seq)
    WHERE kind = 'coach_switched';

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS events_coach_switched;
