-- One writer per add-on (issue 11). Work that calls Heroku or a resource
-- driver claims the add-on first: a lease (owner, expiry) plus a fencing
-- version bumped by every claim. The claim holds no Postgres connection while
-- the call runs, holds across dynos, and lapses by itself when the process
-- holding it dies; a writer records its result only while the fence is still
-- the one its claim got, so a writer whose lease lapsed cannot overwrite the
-- next one's work.
--
-- exchange_started_at: a grant exchange was attempted (its answer may have
-- been lost), so a later refusal of the grant is reported distinctly.
-- requeue: accepted work whose enqueue failed (Redis down); the worker's
-- outbox sweep enqueues it within seconds of Redis returning.
-- halted_job / halt_reason: a plan change or config push that failed
-- permanently; the reconciler leaves it alone until an operator retries.

-- +goose Up
ALTER TABLE addons
    ADD COLUMN lease_owner         text        NOT NULL DEFAULT '',
    ADD COLUMN lease_until         timestamptz,
    ADD COLUMN fence               bigint      NOT NULL DEFAULT 0,
    ADD COLUMN exchange_started_at timestamptz,
    ADD COLUMN requeue             boolean     NOT NULL DEFAULT false,
    ADD COLUMN halted_job          text        NOT NULL DEFAULT '',
    ADD COLUMN halt_reason         text        NOT NULL DEFAULT '';

-- The outbox sweep runs every few seconds: only flagged rows are indexed.
CREATE INDEX addons_requeue_idx ON addons (updated_at) WHERE requeue;

-- +goose Down
DROP INDEX addons_requeue_idx;
ALTER TABLE addons
    DROP COLUMN halt_reason,
    DROP COLUMN halted_job,
    DROP COLUMN requeue,
    DROP COLUMN exchange_started_at,
    DROP COLUMN fence,
    DROP COLUMN lease_until,
    DROP COLUMN lease_owner;
