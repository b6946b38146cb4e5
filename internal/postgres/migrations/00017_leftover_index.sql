-- +goose Up
-- Heroku removes an add-on not provisioned within 12 hours of its request.
-- A failed one that may still hold a resource or holds Heroku's tokens
-- (addon.Addon.Leftover: a recorded resource, tokens, or no grant at all,
-- whose clean-up after the failed request may itself have failed) is then
-- deprovisioned by the reconciler (addon.Service.RemoveLeftover); this
-- index finds them. Only such add-ons are in it: few, whatever the table's
-- size.
CREATE INDEX addons_leftover_idx ON addons (created_at, id)
    WHERE state = 'failed' AND (resource_created_at IS NOT NULL OR access_token IS NOT NULL OR (grant_code IS NULL AND grant_exchanged_at IS NULL));

-- +goose Down
DROP INDEX addons_leftover_idx;
