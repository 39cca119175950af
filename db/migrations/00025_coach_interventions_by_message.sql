-- +goose NO TRANSACTION
-- A page of history says why the coach wrote its messages (MessagesList
-- reads their interventions by message). Built concurrently.

-- +goose Up
CREATE INDEX CONCURRENTLY IF NOT EXISTS coach_interventions_message_id ON coach_interventions (message_id)
    WHERE message_id IS NOT NULL;

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS coach_interventions_message_id;
