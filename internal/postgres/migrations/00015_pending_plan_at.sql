-- When Heroku asked for the pending plan (issue 11). A plan change made
-- inside Heroku's call replaces the change that was pending when it took
-- the add-on, and must keep one asked for while it worked, even for the
-- same plan: the time tells the two apart.

-- +goose Up
ALTER TABLE addons ADD COLUMN pending_plan_at timestamptz;

-- +goose Down
ALTER TABLE addons DROP COLUMN pending_plan_at;
