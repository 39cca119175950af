-- The events trigger does not notify in a session whose setting
-- pods.notify is 'after_commit': Pods' message writers (db.OpenWriters),
-- whose node announces the pods they wrote to after the commits. A
-- transaction that NOTIFYs holds a lock that every other notifying
-- transaction of the server waits for, from before its commit until its
-- WAL is flushed, so commits that notify are flushed one at a time
-- (sampled under 500 messages/s, a third of the active message writers
-- were waiting for it). Announced after commit, many commits share one
-- notification transaction, and the commits share WAL flushes. Every
-- other writer (the other RPCs, the coach, psql) still notifies from the
-- trigger.

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('pods.notify', true) IS DISTINCT FROM 'after_commit' THEN
        PERFORM pg_notify('pods_events', NEW.pod_id::text);
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pods_events', NEW.pod_id::text);
    RETURN NULL;
END $$;
-- +goose StatementEnd
