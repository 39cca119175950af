-- A message's score no longer has a foreign key to its message. The
-- scorer saves about one score per message, each second in one statement,
-- and each row's key check took a KEY SHARE lock on its message's row,
-- writing the lock into the message's tuple: the score insert took 19.5 ms
-- a second under 500 messages/s (8.8 ms without the key), on the same tick
-- as the node's other periodic statements. A trigger deletes the score of
-- a deleted message instead (also when its pod's deletion deletes it).
-- A score saved while its message is being deleted can outlive it; it is
-- never read (RecentScores joins messages) and holds no text.

-- +goose Up
ALTER TABLE message_scores DROP CONSTRAINT message_scores_message_id_fkey;

-- +goose StatementBegin
CREATE FUNCTION messages_forget_deleted_score() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM message_scores WHERE message_id = OLD.id;
    RETURN NULL;
END $$;
-- +goose StatementEnd

CREATE TRIGGER messages_forget_deleted_score AFTER DELETE ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_forget_deleted_score();

-- +goose Down
DROP TRIGGER messages_forget_deleted_score ON messages;
DROP FUNCTION messages_forget_deleted_score();
DELETE FROM message_scores s WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = s.message_id);
ALTER TABLE message_scores ADD CONSTRAINT message_scores_message_id_fkey
    FOREIGN KEY (message_id) REFERENCES messages ON DELETE CASCADE;
