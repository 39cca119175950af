-- A pod's idempotency key belongs to the user who created it, not to its
-- owner: when the owner left, the key went to the next owner, and the
-- creator's retry made a second pod.

-- +goose Up
ALTER TABLE pods ADD COLUMN created_by uuid REFERENCES users ON DELETE SET NULL;
UPDATE pods SET created_by = owner_id WHERE idempotency_key IS NOT NULL;
ALTER TABLE pods DROP CONSTRAINT pods_owner_id_idempotency_key_key;
ALTER TABLE pods ADD CONSTRAINT pods_created_by_idempotency_key_key UNIQUE (created_by, idempotency_key);

-- +goose Down
ALTER TABLE pods DROP CONSTRAINT pods_created_by_idempotency_key_key;
ALTER TABLE pods ADD CONSTRAINT pods_owner_id_idempotency_key_key UNIQUE (owner_id, idempotency_key);
ALTER TABLE pods DROP COLUMN created_by;
