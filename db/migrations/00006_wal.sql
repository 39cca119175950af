-- The publication through which the logical-replication change source
-- streams the event log's inserts.

-- +goose Up
CREATE PUBLICATION pods_events FOR TABLE events WITH (publish = 'insert');

-- +goose Down
DROP PUBLICATION pods_events;
