-- Kiln's first schema: add-ons, their audit trail, and the tenant accounts
-- of the built-in "account" resource driver.
--
-- Conventions for later migrations: one numbered file per change
-- (00002_something.sql, ...), each with an Up and a Down section; timestamps
-- are timestamptz; secret columns are bytea sealed by internal/secret (never
-- plaintext); never edit a migration that has shipped, add a new one.

-- +goose Up
CREATE TABLE addons (
    -- Heroku's add-on uuid: the primary key, so the unique constraint decides
    -- whether a repeated provision request creates anything.
    id                  uuid        PRIMARY KEY,
    name                text        NOT NULL DEFAULT '',
    plan                text        NOT NULL,
    pending_plan        text        NOT NULL DEFAULT '',
    region              text        NOT NULL DEFAULT '',
    callback_url        text        NOT NULL DEFAULT '',
    options             jsonb,
    -- The log input URL carries a Logplex token: sealed like the drain token.
    log_input_url       bytea,
    log_drain_token     bytea,
    state               text        NOT NULL CHECK (state IN ('provisioning', 'provisioned', 'failed', 'deprovisioning', 'deprovisioned')),
    reason              text        NOT NULL DEFAULT '',
    grant_code          bytea,
    grant_expires_at    timestamptz,
    access_token        bytea,
    refresh_token       bytea,
    token_expires_at    timestamptz,
    heroku_user_id      text        NOT NULL DEFAULT '',
    vars                bytea,
    -- Pipeline steps: NULL means not done yet.
    grant_exchanged_at  timestamptz,
    resource_created_at timestamptz,
    config_pushed_at    timestamptz,
    provisioned_at      timestamptz,
    deprovisioned_at    timestamptz,
    deadline            timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- The reconciler's scan: only add-ons with work left, oldest first.
CREATE INDEX addons_stale_idx ON addons (updated_at)
    WHERE state IN ('provisioning', 'deprovisioning');

CREATE TABLE addon_events (
    id         bigserial   PRIMARY KEY,
    addon_id   uuid        NOT NULL REFERENCES addons (id) ON DELETE CASCADE,
    kind       text        NOT NULL,
    state      text        NOT NULL DEFAULT '',
    message    text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX addon_events_addon_idx ON addon_events (addon_id, id);

-- Tenants of the "account" driver, where Kiln itself is the service. The id
-- is the add-on's uuid; the API key is stored only as its SHA-256.
CREATE TABLE accounts (
    id           uuid        PRIMARY KEY,
    name         text        NOT NULL UNIQUE,
    key_hash     bytea       NOT NULL,
    plan         text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    deleted_at   timestamptz
);

-- +goose Down
DROP TABLE accounts;
DROP TABLE addon_events;
DROP TABLE addons;
