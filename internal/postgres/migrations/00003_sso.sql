-- Single sign-on: the SSO tokens already used, so a captured sign-in form
-- cannot be replayed on any web dyno while its timestamp is still accepted.
-- Keys are hashes of the tokens (never the tokens); rows are worthless once
-- expires_at has passed and are purged opportunistically by the next claims.

-- +goose Up
CREATE TABLE nonces (
    key        text        PRIMARY KEY,
    expires_at timestamptz NOT NULL
);

-- The purge finds expired keys through this index.
CREATE INDEX nonces_expires_idx ON nonces (expires_at);

-- +goose Down
DROP TABLE nonces;
