-- +goose Up
-- An add-on abandoned at its deadline has its resource destroyed. Before
-- this release it kept that resource's config vars and steps, so an
-- operator's retry skipped creating it and pushed dead credentials to the
-- app. Releases from this one forget them when they give up (issue 11);
-- this does the same for add-ons given up before. updated_at moves, as on
-- every write, so no writer's copy from before passes for the row.
UPDATE addons
SET vars = NULL, resource_created_at = NULL, config_pushed_at = NULL,
    updated_at = greatest(clock_timestamp(), updated_at + interval '1 microsecond')
WHERE state = 'failed' AND reason = 'provisioning did not finish before the deadline'
  AND (vars IS NOT NULL OR resource_created_at IS NOT NULL OR config_pushed_at IS NOT NULL);

-- +goose Down
-- Nothing to restore: the vars named a resource that no longer exists.
SELECT 1;
