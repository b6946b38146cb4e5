-- +goose Up
-- Heroku removes an add-on not provisioned within 12 hours of its request.
-- A failed one that still holds a resource or Heroku's tokens is then
-- deprovisioned by the reconciler (addon.Service.RemoveLeftover); this
-- index finds them. Only such add-ons are in it: few, whatever the table's
-- size.
CREATE INDEX addons_leftover_idx ON addons (created_at, id)
    WHERE state = 'failed' AND (resource_created_at IS NOT NULL OR access_token IS NOT NULL);

-- +goose Down
DROP INDEX addons_leftover_idx;
