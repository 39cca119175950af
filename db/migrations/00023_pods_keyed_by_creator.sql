-- A pod's idempotency key belongs to the user who created it, not to its
-- owner: when the owner left, the key went to the next owner, and the
-- creator's retry made a second pod. The creator is the pod's first
-- member; a trigger fills it in for nodes of the previous version, which
-- do not name it.

-- +goose Up
ALTER TABLE pods ADD COLUMN created_by uuid REFERENCES users ON DELETE SET NULL;
UPDATE pods p SET created_by = coalesce(
    (SELECT user_id FROM events e WHERE e.pod_id = p.id AND e.kind = 'member_joined' ORDER BY seq LIMIT 1),
    owner_id);
ALTER TABLE pods DROP CONSTRAINT pods_owner_id_idempotency_key_key;
ALTER TABLE pods ADD CONSTRAINT pods_created_by_idempotency_key_key UNIQUE (created_by, idempotency_key);

-- +goose StatementBegin
CREATE FUNCTION pods_created_by() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.created_by := coalesce(NEW.created_by, NEW.owner_id);
    RETURN NEW;
END $$;
-- +goose StatementEnd
CREATE TRIGGER pods_created_by BEFORE INSERT ON pods
    FOR EACH ROW EXECUTE FUNCTION pods_created_by();

-- +goose Down
DROP TRIGGER pods_created_by ON pods;
DROP FUNCTION pods_created_by;
ALTER TABLE pods DROP CONSTRAINT pods_created_by_idempotency_key_key;
-- Keys now the creators' may meet under one owner: those lose their key.
UPDATE pods SET idempotency_key = NULL
WHERE (owner_id, idempotency_key) IN (
    SELECT owner_id, idempotency_key FROM pods WHERE idempotency_key IS NOT NULL
    GROUP BY 1, 2 HAVING count(*) > 1);
ALTER TABLE pods ADD CONSTRAINT pods_owner_id_idempotency_key_key UNIQUE (owner_id, idempotency_key);
ALTER TABLE pods DROP COLUMN created_by;
