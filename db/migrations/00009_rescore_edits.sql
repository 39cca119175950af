-- A message whose text or humor flag changes loses its hostility score, so
-- the coach scores the new text (or, for humor, leaves it out) instead of
-- counting what it said before.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION messages_forget_score() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM message_scores WHERE message_id = NEW.id;
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER messages_forget_score AFTER UPDATE ON messages
    FOR EACH ROW WHEN (OLD.body IS DISTINCT FROM NEW.body OR OLD.humor IS DISTINCT FROM NEW.humor)
    EXECUTE FUNCTION messages_forget_score();
CREATE INDEX messages_edited_at ON messages (edited_at) WHERE edited_at IS NOT NULL;

-- +goose Down
DROP INDEX messages_edited_at;
DROP TRIGGER messages_forget_score ON messages;
DROP FUNCTION messages_forget_score;
