-- A member's read cursor starts at their memberJoined event, not at 0: a new
-- member, or one who left and joined again, was told that every message by
-- others since the pod began was unread, though their stream starts at the
-- join and never carries those messages. Memberships stored before are
-- moved up to their join.

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION memberships_before_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    u users;
BEGIN
    SELECT * INTO u FROM users WHERE id = NEW.user_id;
    NEW.joined_seq := pods_emit(NEW.pod_id, 'member_joined', NULL, NEW.user_id,
        jsonb_build_object('user_id', u.id, 'handle', u.handle, 'display_name', u.display_name,
                           'timezone', u.timezone, 'coach', u.coach,
                           'role', NEW.role, 'joined_at', NEW.joined_at));
    IF NEW.joined_seq IS NULL THEN
        RAISE foreign_key_violation USING MESSAGE = 'pod ' || NEW.pod_id || ' does not exist';
    END IF;
    NEW.read_seq := greatest(NEW.read_seq, NEW.joined_seq);
    PERFORM pg_notify('pods_members', NEW.user_id::text);
    RETURN NEW;
END $$;
-- +goose StatementEnd

UPDATE memberships SET read_seq = joined_seq WHERE read_seq < joined_seq;

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION memberships_before_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    u users;
BEGIN
    SELECT * INTO u FROM users WHERE id = NEW.user_id;
    NEW.joined_seq := pods_emit(NEW.pod_id, 'member_joined', NULL, NEW.user_id,
        jsonb_build_object('user_id', u.id, 'handle', u.handle, 'display_name', u.display_name,
                           'timezone', u.timezone, 'coach', u.coach,
                           'role', NEW.role, 'joined_at', NEW.joined_at));
    IF NEW.joined_seq IS NULL THEN
        RAISE foreign_key_violation USING MESSAGE = 'pod ' || NEW.pod_id || ' does not exist';
    END IF;
    PERFORM pg_notify('pods_members', NEW.user_id::text);
    RETURN NEW;
END $$;
-- +goose StatementEnd
