-- +goose Up
-- A provisioned add-on whose config vars changed (rotated credentials) but
-- did not reach Heroku is pushed by a job; the reconciler finds the ones
-- whose job was lost through this index. Add-ons Heroku sent without an
-- OAuth grant have no token and nothing to push.
CREATE INDEX addons_unpushed_config_idx ON addons (updated_at)
    WHERE state = 'provisioned' AND config_pushed_at IS NULL AND access_token IS NOT NULL;

-- +goose Down
DROP INDEX addons_unpushed_config_idx;
