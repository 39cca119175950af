-- A new owner (the owner left and the longest-standing member took over) is
-- an event of the pod, so that every member's client knows who may delete
-- the pod and switch the coach.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION pods_announce_owner() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pods_emit(NEW.id, 'owner_changed', NULL, NEW.owner_id,
        jsonb_build_object('user_id', NEW.owner_id));
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER pods_announce_owner AFTER UPDATE ON pods
    FOR EACH ROW WHEN (OLD.owner_id IS DISTINCT FROM NEW.owner_id)
    EXECUTE FUNCTION pods_announce_owner();

-- +goose Down
DROP TRIGGER pods_announce_owner ON pods;
DROP FUNCTION pods_announce_owner;
