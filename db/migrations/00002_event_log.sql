-- The per-pod event log: every change clients must see becomes a row here,
-- written by triggers in the same transaction as the change, with a gap-free
-- seq per pod taken from pods.last_seq. A NOTIFY on channel pods_events
-- (payload: the pod id) wakes the servers up; they read the rows themselves.
-- Identical payloads are merged within a transaction, so a transaction sends
-- one notification per pod it touched however many events it wrote.

-- +goose Up
CREATE TABLE events (
    pod_id     uuid NOT NULL REFERENCES pods ON DELETE CASCADE,
    seq        bigint NOT NULL,
    -- message_created, message_edited, message_deleted, reaction_added,
    -- reaction_removed, member_joined, member_left, ...
    kind       text NOT NULL,
    message_id uuid,
    user_id    uuid,
    -- A snapshot of what changed, so that readers need no other table.
    payload    jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pod_id, seq)
);
CREATE INDEX events_message_id ON events (message_id) WHERE message_id IS NOT NULL;

-- Pods deleted recently, so a server can tell a deleted pod from a quiet one.
CREATE TABLE deleted_pods (
    pod_id     uuid PRIMARY KEY,
    owner_id   uuid NOT NULL,
    last_seq   bigint NOT NULL,
    deleted_at timestamptz NOT NULL DEFAULT now()
);

-- +goose StatementBegin
-- pods_next_seq takes the next seq of a pod, locking the pod row until the
-- transaction ends. NULL if the pod is gone (e.g. being deleted).
CREATE FUNCTION pods_next_seq(p_pod uuid) RETURNS bigint
LANGUAGE sql AS $$
    UPDATE pods SET last_seq = last_seq + 1 WHERE id = p_pod RETURNING last_seq
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- pods_emit appends an event to a pod's log. It does nothing if the pod is
-- gone: a deleted pod's log goes with it.
CREATE FUNCTION pods_emit(p_pod uuid, p_kind text, p_message uuid, p_user uuid, p_payload jsonb)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    s bigint := pods_next_seq(p_pod);
BEGIN
    IF s IS NOT NULL THEN
        INSERT INTO events (pod_id, seq, kind, message_id, user_id, payload)
        VALUES (p_pod, s, p_kind, p_message, p_user, p_payload);
    END IF;
    RETURN s;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pods_events', NEW.pod_id::text);
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER events_notify AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_notify();

-- +goose StatementBegin
-- A new message takes its seq before it is stored, so that the row and its
-- messageCreated event agree. If the insert then fails (a duplicate
-- idempotency key), the statement's seq and event roll back with it.
CREATE FUNCTION messages_before_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.seq := pods_next_seq(NEW.pod_id);
    IF NEW.seq IS NULL THEN
        RAISE foreign_key_violation USING MESSAGE = 'pod ' || NEW.pod_id || ' does not exist';
    END IF;
    INSERT INTO events (pod_id, seq, kind, message_id, user_id, payload, created_at)
    VALUES (NEW.pod_id, NEW.seq, 'message_created', NEW.id, NEW.author_id, to_jsonb(NEW), NEW.created_at);
    RETURN NEW;
END $$;
-- +goose StatementEnd
CREATE TRIGGER messages_before_insert BEFORE INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_before_insert();

-- +goose StatementBegin
CREATE FUNCTION messages_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pods_emit(NEW.pod_id, 'message_edited', NEW.id, NEW.author_id, to_jsonb(NEW));
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER messages_after_update AFTER UPDATE ON messages
    FOR EACH ROW WHEN (OLD.body IS DISTINCT FROM NEW.body OR OLD.humor IS DISTINCT FROM NEW.humor)
    EXECUTE FUNCTION messages_after_update();

-- +goose StatementBegin
-- Deleting a message scrubs its text from the log: its earlier created and
-- edited events become message_deleted events too.
CREATE FUNCTION messages_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    deleted jsonb := jsonb_build_object('message_id', OLD.id);
BEGIN
    IF pods_emit(OLD.pod_id, 'message_deleted', OLD.id, OLD.author_id, deleted) IS NOT NULL THEN
        UPDATE events SET kind = 'message_deleted', payload = deleted
        WHERE message_id = OLD.id AND kind IN ('message_created', 'message_edited');
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER messages_after_delete AFTER DELETE ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_after_delete();

-- +goose StatementBegin
-- Reactions on a message that is itself being deleted emit nothing.
CREATE FUNCTION reactions_after_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r reactions := COALESCE(NEW, OLD);
    pod uuid;
BEGIN
    SELECT pod_id INTO pod FROM messages WHERE id = r.message_id;
    IF pod IS NOT NULL THEN
        PERFORM pods_emit(pod,
            CASE TG_OP WHEN 'INSERT' THEN 'reaction_added' ELSE 'reaction_removed' END,
            r.message_id, r.user_id,
            jsonb_build_object('message_id', r.message_id, 'user_id', r.user_id, 'emoji', r.emoji));
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER reactions_after_change AFTER INSERT OR DELETE ON reactions
    FOR EACH ROW EXECUTE FUNCTION reactions_after_change();

-- +goose StatementBegin
-- A new member's memberJoined event carries who they are. A NOTIFY on
-- pods_members (payload: the user id) tells servers with open streams of
-- that user to add the pod to them.
CREATE FUNCTION memberships_before_insert() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER memberships_before_insert BEFORE INSERT ON memberships
    FOR EACH ROW EXECUTE FUNCTION memberships_before_insert();

-- +goose StatementBegin
CREATE FUNCTION memberships_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pods_emit(OLD.pod_id, 'member_left', NULL, OLD.user_id,
        jsonb_build_object('user_id', OLD.user_id));
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER memberships_after_delete AFTER DELETE ON memberships
    FOR EACH ROW EXECUTE FUNCTION memberships_after_delete();

-- +goose StatementBegin
-- A deleted pod's log goes with it, so the deletion itself is recorded in
-- deleted_pods and announced with a NOTIFY.
CREATE FUNCTION pods_before_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO deleted_pods (pod_id, owner_id, last_seq) VALUES (OLD.id, OLD.owner_id, OLD.last_seq)
    ON CONFLICT (pod_id) DO NOTHING;
    PERFORM pg_notify('pods_events', OLD.id::text);
    RETURN OLD;
END $$;
-- +goose StatementEnd
CREATE TRIGGER pods_before_delete BEFORE DELETE ON pods
    FOR EACH ROW EXECUTE FUNCTION pods_before_delete();

-- +goose Down
DROP TRIGGER pods_before_delete ON pods;
DROP TRIGGER memberships_after_delete ON memberships;
DROP TRIGGER memberships_before_insert ON memberships;
DROP TRIGGER reactions_after_change ON reactions;
DROP TRIGGER messages_after_delete ON messages;
DROP TRIGGER messages_after_update ON messages;
DROP TRIGGER messages_before_insert ON messages;
DROP FUNCTION pods_before_delete, memberships_after_delete, memberships_before_insert,
    reactions_after_change, messages_after_delete, messages_after_update, messages_before_insert;
DROP TABLE deleted_pods;
DROP TABLE events;
DROP FUNCTION events_notify, pods_emit, pods_next_seq;
