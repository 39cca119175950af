-- A session that is deleted (log-out, or its user deleted) or changed is
-- announced on pods_sessions (payload: the token hash in hex), so that
-- servers caching sessions forget it at once.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION sessions_announce_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pods_sessions', encode(OLD.token_hash, 'hex'));
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER sessions_announce_revoked AFTER UPDATE OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION sessions_announce_revoked();

-- +goose Down
DROP TRIGGER sessions_announce_revoked ON sessions;
DROP FUNCTION sessions_announce_revoked;
