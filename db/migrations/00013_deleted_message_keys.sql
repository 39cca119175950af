-- The idempotency key of a deleted message stays taken, so that a late
-- retry of its SendMessage cannot store it again. Only the key is kept, not
-- the text; the row goes with its author or its pod.

-- +goose Up
CREATE TABLE deleted_message_keys (
    author_id       uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    idempotency_key text NOT NULL,
    pod_id          uuid NOT NULL REFERENCES pods ON DELETE CASCADE,
    PRIMARY KEY (author_id, idempotency_key)
);
CREATE INDEX deleted_message_keys_pod ON deleted_message_keys (pod_id);

-- +goose Down
DROP TABLE deleted_message_keys;
