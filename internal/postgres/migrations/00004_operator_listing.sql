-- +goose Up
-- The operator API pages through add-ons by created_at with keyset
-- pagination ((created_at, id) > (last seen)), which this index serves
-- without sorting; paging by id uses the primary key.
CREATE INDEX addons_created_idx ON addons (created_at, id);

-- Operators address add-ons by name as well as by id.
CREATE INDEX addons_name_idx ON addons (name);

-- +goose Down
DROP INDEX addons_name_idx;
DROP INDEX addons_created_idx;
