-- Switching a pod's coach on or off is an event of the pod, so that every
-- member's client shows it at once.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION pods_announce_coach() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pods_emit(NEW.id, 'coach_switched', NULL, NEW.owner_id,
        jsonb_build_object('enabled', NEW.coach_enabled));
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER pods_announce_coach AFTER UPDATE ON pods
    FOR EACH ROW WHEN (OLD.coach_enabled IS DISTINCT FROM NEW.coach_enabled)
    EXECUTE FUNCTION pods_announce_coach();

-- +goose Down
DROP TRIGGER pods_announce_coach ON pods;
DROP FUNCTION pods_announce_coach;
