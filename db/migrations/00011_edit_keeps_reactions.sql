-- A messageEdited event carries the whole message, its reactions too, so
-- that a client replacing its copy with the event's keeps them.

-- +goose Up
-- +goose StatementBegin
-- message_reactions returns a message's reactions as MessagesList gives
-- them: by emoji, in the order each emoji was first used, each with its
-- users in the order they reacted.
CREATE FUNCTION message_reactions(p_message uuid) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object('emoji', emoji, 'user_ids', users)
                              ORDER BY first_at, first_user), '[]')
    FROM (SELECT emoji, jsonb_agg(user_id ORDER BY created_at, user_id) AS users,
                 min(created_at) AS first_at,
                 (array_agg(user_id ORDER BY created_at, user_id))[1] AS first_user
          FROM reactions WHERE message_id = p_message GROUP BY emoji) r
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION messages_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The pod row first: a reaction being written holds it until it
    -- commits, and the next statement's snapshot then includes it, so the
    -- reactions read agree with the events before this one.
    PERFORM 1 FROM pods WHERE id = NEW.pod_id FOR NO KEY UPDATE;
    PERFORM pods_emit(NEW.pod_id, 'message_edited', NEW.id, NEW.author_id,
        to_jsonb(NEW) || jsonb_build_object('reactions', message_reactions(NEW.id)));
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION messages_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pods_emit(NEW.pod_id, 'message_edited', NEW.id, NEW.author_id, to_jsonb(NEW));
    RETURN NULL;
END $$;
-- +goose StatementEnd
DROP FUNCTION message_reactions;
