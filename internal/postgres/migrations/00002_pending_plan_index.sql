-- +goose Up
-- A plan change recorded while an add-on was provisioning is applied by a
-- job once it is provisioned; the reconciler finds the ones whose job was
-- lost through this index.
CREATE INDEX addons_pending_plan_idx ON addons (updated_at)
    WHERE state = 'provisioned' AND pending_plan <> '';

-- +goose Down
DROP INDEX addons_pending_plan_idx;
