-- Secrets every node shares, made once by the database: the key that signs
-- device tokens (proof that a device logged in to an account before, which
-- gives its log-ins a limit of failed password checks of their own).
-- gen_random_uuid draws from the server's strong random source; two of
-- them give 244 random bits.

-- +goose Up
CREATE TABLE server_secrets (
    name text PRIMARY KEY,
    secret bytea NOT NULL CHECK (length(secret) >= 32)
);
INSERT INTO server_secrets
VALUES ('device_tokens', decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));

-- +goose Down
DROP TABLE server_secrets;
