-- A message's score no longer has a foreign key to its message. The
-- scorer saves about one score per message, each second in one statement,
-- and each row's key check took a KEY SHARE lock on its message's row,
-- writing the lock into the message's tuple: the score insert took 19.5 ms
-- a second under 500 messages/s (8.8 ms without the key), on the same tick
-- as the node's other periodic statements. The trigger that forgets an
-- edited message's score now forgets a deleted message's too (also when
-- its pod's deletion deletes it). A score saved while its message is being
-- deleted can outlive it; it is never read (RecentScores joins messages)
-- and holds no text.

-- +goose Up
ALTER TABLE message_scores DROP CONSTRAINT message_scores_message_id_fkey;

-- +goose StatementBegin
-- OLD.id: an update keeps a message's id, a delete has no NEW.
CREATE OR REPLACE FUNCTION messages_forget_score() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM message_scores WHERE message_id = OLD.id;
    RETURN NULL;
END $$;
-- +goose StatementEnd

CREATE TRIGGER messages_forget_deleted_score AFTER DELETE ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_forget_score();

-- +goose Down
DROP TRIGGER messages_forget_deleted_score ON messages;
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION messages_forget_score() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM message_scores WHERE message_id = NEW.id;
    RETURN NULL;
END $$;
-- +goose StatementEnd
DELETE FROM message_scores s WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = s.message_id);
ALTER TABLE message_scores ADD CONSTRAINT message_scores_message_id_fkey
    FOREIGN KEY (message_id) REFERENCES messages ON DELETE CASCADE;
