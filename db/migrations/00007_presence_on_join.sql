-- A member who joins a pod while online is announced online to that pod,
-- so its members see them without waiting for their next stream.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION memberships_announce_presence() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM presence WHERE user_id = NEW.user_id AND online) THEN
        PERFORM pg_notify('pods_presence', '1:' || NEW.user_id || ':' || NEW.pod_id);
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER memberships_announce_presence AFTER INSERT ON memberships
    FOR EACH ROW EXECUTE FUNCTION memberships_announce_presence();

-- +goose Down
DROP TRIGGER memberships_announce_presence ON memberships;
DROP FUNCTION memberships_announce_presence;
