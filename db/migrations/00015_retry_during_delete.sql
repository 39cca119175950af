-- A retry of a message's SendMessage that arrives while the message's
-- delete is still in its transaction could store the message again: its
-- statement's snapshot does not see the deleted key, it waits for the pod
-- row the delete holds (the delete emits an event), and once the delete
-- commits the old row no longer blocks the key. The trigger now looks for
-- the deleted key again after taking the pod row; in READ COMMITTED (every
-- transaction that writes messages runs in it) a PL/pgSQL statement takes a
-- new snapshot, so it sees a delete that committed meanwhile.

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION messages_before_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.seq := pods_next_seq(NEW.pod_id);
    IF NEW.seq IS NULL THEN
        RAISE foreign_key_violation USING MESSAGE = 'pod ' || NEW.pod_id || ' does not exist';
    END IF;
    IF EXISTS (SELECT 1 FROM deleted_message_keys
               WHERE author_id = NEW.author_id AND idempotency_key = NEW.idempotency_key) THEN
        RAISE unique_violation USING MESSAGE = 'the message sent with this idempotency key was deleted',
            CONSTRAINT = 'deleted_message_keys_pkey';
    END IF;
    INSERT INTO events (pod_id, seq, kind, message_id, user_id, payload, created_at)
    VALUES (NEW.pod_id, NEW.seq, 'message_created', NEW.id, NEW.author_id, to_jsonb(NEW), NEW.created_at);
    RETURN NEW;
END $$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION messages_before_insert() RETURNS trigger LANGUAGE plpgsql AS $$
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
