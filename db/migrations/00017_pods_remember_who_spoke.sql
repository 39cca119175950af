-- A pod remembers the seq and time of the last message a member (anyone but
-- the coach) wrote: spoke_seq and spoke_at, set in the same update of the
-- pod row that takes the message's seq. The coach's quiet scan used to look
-- for the newest member message still there, so deleting it moved the pod's
-- quiet spell back: the coach nudged a spell a second time, or nudged at
-- once a pod whose member had written an hour ago and deleted it. A delete
-- does not move these back.

-- +goose Up
ALTER TABLE pods ADD COLUMN spoke_seq bigint NOT NULL DEFAULT 0,
                 ADD COLUMN spoke_at timestamptz;

UPDATE pods p SET spoke_seq = last.seq, spoke_at = last.created_at
FROM (SELECT DISTINCT ON (pod_id) pod_id, seq, created_at FROM messages
      WHERE author_id <> 'c0ac0000-0000-4000-8000-000000000001'
      ORDER BY pod_id, seq DESC) last
WHERE last.pod_id = p.id;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION messages_before_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.author_id = 'c0ac0000-0000-4000-8000-000000000001' THEN -- the coach
        NEW.seq := pods_next_seq(NEW.pod_id);
    ELSE
        UPDATE pods SET last_seq = last_seq + 1, spoke_seq = last_seq + 1, spoke_at = NEW.created_at
        WHERE id = NEW.pod_id RETURNING last_seq INTO NEW.seq;
    END IF;
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

ALTER TABLE pods DROP COLUMN spoke_seq, DROP COLUMN spoke_at;
