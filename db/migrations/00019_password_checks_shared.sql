-- Password checks per handle are limited in the database, not in each
-- node's memory: N nodes behind a load balancer gave N times the guesses,
-- and a restart forgot them. One token bucket per handle tried lately
-- (whether or not a user has it); buckets full again are pruned.

-- +goose Up
CREATE TABLE password_checks (
    handle     text PRIMARY KEY,
    -- Tokens left at updated_at; the bucket refills with time.
    tokens     double precision NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX password_checks_updated_at ON password_checks (updated_at);

-- +goose Down
DROP TABLE password_checks;
