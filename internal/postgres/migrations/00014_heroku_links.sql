-- +goose Up
-- What Kiln knows of each add-on from Heroku itself (issue 14): the app it
-- belongs to and Heroku's state (the sync with GET /addons/{id}), a token
-- Heroku refused, the webhook subscription and its sealed secret, the log
-- stream's cursor, the asynchronous deprovision mark, and credentials a roll
-- replaced (sealed) with the time they are revoked. Its own table, so none
-- of this contends with the provisioning pipeline's row.
CREATE TABLE addon_links (
    addon_id                uuid        PRIMARY KEY REFERENCES addons (id) ON DELETE CASCADE,
    app_id                  text        NOT NULL DEFAULT '',
    app_name                text        NOT NULL DEFAULT '',
    heroku_state            text        NOT NULL DEFAULT '',
    synced_at               timestamptz,
    next_sync_at            timestamptz,
    access_refused          text        NOT NULL DEFAULT '',
    access_refused_at       timestamptz,
    webhook_id              text        NOT NULL DEFAULT '',
    webhook_secret          bytea,
    subscribed_at           timestamptz,
    attachments             jsonb       NOT NULL DEFAULT '[]',
    log_cursor              bigint      NOT NULL DEFAULT 0,
    marked_deprovisioned_at timestamptz,
    retired_vars            bytea,
    retire_at               timestamptz,
    updated_at              timestamptz NOT NULL DEFAULT now()
);

-- The sync sweep: add-ons whose slot has come.
CREATE INDEX addon_links_next_sync_idx ON addon_links (next_sync_at);
-- The operator API's app filter.
CREATE INDEX addon_links_app_name_idx ON addon_links (lower(app_name));
-- Credentials whose grace ends.
CREATE INDEX addon_links_retire_idx ON addon_links (retire_at) WHERE retire_at IS NOT NULL;

-- Webhook events applied, by Heroku's event id, so a repeat is applied once.
CREATE TABLE addon_webhook_events (
    event_id    text        PRIMARY KEY,
    addon_id    uuid        NOT NULL REFERENCES addons (id) ON DELETE CASCADE,
    received_at timestamptz NOT NULL DEFAULT now()
);

-- The log stream's backlog sweep reads recent events.
CREATE INDEX addon_events_created_idx ON addon_events (created_at);

-- The account driver's previous key, accepted until a credential roll's
-- grace ends.
ALTER TABLE accounts ADD COLUMN prev_key_hash bytea;

-- +goose Down
ALTER TABLE accounts DROP COLUMN prev_key_hash;
DROP INDEX addon_events_created_idx;
DROP TABLE addon_webhook_events;
DROP TABLE addon_links;
