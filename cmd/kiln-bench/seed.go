package main

import (
	"context"
	"fmt"
)

// seed inserts n add-ons directly, as a deployment that has served for a
// while holds them: provisioned, with tokens, config vars and a five-line
// audit trail each, and an account for the account driver. The sealed
// columns hold random bytes of a realistic size; nothing reads them back.
func (st *stack) seed(ctx context.Context, n int) error {
	if n <= 0 {
		return nil
	}
	tx, err := st.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	_, err = tx.ExecContext(ctx, `
		CREATE TEMP TABLE seed_ids ON COMMIT DROP AS
		SELECT gen_random_uuid() AS id, g AS n, now() - (g || ' seconds')::interval AS at
		FROM generate_series(1, $1::int) AS g`, n)
	if err != nil {
		return fmt.Errorf("seed ids: %w", err)
	}
	_, err = tx.ExecContext(ctx, `
		INSERT INTO addons (id, name, plan, region, callback_url, options, log_input_url, log_drain_token,
			state, access_token, refresh_token, token_expires_at, heroku_user_id, vars,
			grant_exchanged_at, resource_created_at, config_pushed_at, provisioned_at, deadline,
			created_at, updated_at)
		SELECT id, 'seed-' || n, 'test', 'amazon-web-services::us-east-1',
			'https://api.heroku.com/addons/' || id, '{}',
			sha512(('l' || n)::bytea), sha512(('d' || n)::bytea),
			'provisioned', sha512(('a' || n)::bytea), sha512(('r' || n)::bytea), at + interval '8 hours',
			gen_random_uuid()::text, sha512(('v' || n)::bytea) || sha512(('w' || n)::bytea),
			at, at, at, at, at + interval '11 hours', at, at
		FROM seed_ids`)
	if err != nil {
		return fmt.Errorf("seed add-ons: %w", err)
	}
	_, err = tx.ExecContext(ctx, `
		INSERT INTO addon_events (addon_id, kind, state, message, created_at)
		SELECT s.id, e.kind, e.state, e.message, s.at
		FROM seed_ids s CROSS JOIN (VALUES
			(1, 'state', 'provisioning', 'provision requested on plan test'),
			(2, 'step', 'provisioning', 'OAuth grant exchanged'),
			(3, 'step', 'provisioning', 'resource created by driver account'),
			(4, 'step', 'provisioning', 'config vars pushed'),
			(5, 'state', 'provisioned', '')) AS e(i, kind, state, message)
		ORDER BY s.n, e.i`)
	if err != nil {
		return fmt.Errorf("seed events: %w", err)
	}
	_, err = tx.ExecContext(ctx, `
		INSERT INTO accounts (id, name, key_hash, plan, created_at, updated_at)
		SELECT id, 'seed-' || replace(id::text, '-', ''), sha256(id::text::bytea), 'test', at, at
		FROM seed_ids`)
	if err != nil {
		return fmt.Errorf("seed accounts: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if _, err = st.db.ExecContext(ctx, "VACUUM ANALYZE addons, addon_events, accounts"); err != nil {
		return err
	}
	// Seeding writes hundreds of megabytes of WAL and so triggers
	// checkpoints at unpredictable moments, after which every page's first
	// change is logged whole. A checkpoint here starts each growth run in
	// the same state. It needs superuser rights; without them, carry on.
	_, _ = st.db.ExecContext(ctx, "CHECKPOINT")
	return nil
}

// count is how many add-ons the table holds.
func (st *stack) count(ctx context.Context) (int, error) {
	var n int
	err := st.db.QueryRowContext(ctx, "SELECT count(*) FROM addons").Scan(&n)
	return n, err
}

// states counts add-ons by state, to show that a run left none failed.
func (st *stack) states(ctx context.Context) map[string]int {
	out := map[string]int{}
	rows, err := st.db.QueryContext(ctx, "SELECT state, count(*) FROM addons GROUP BY state")
	if err != nil {
		return out
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		var n int
		if rows.Scan(&s, &n) == nil {
			out[s] = n
		}
	}
	return out
}

// pending is how many tasks wait in an asynq queue.
func (st *stack) pending(ctx context.Context, queue string) (int, error) {
	n, err := st.rdb.LLen(ctx, "asynq:{"+queue+"}:pending").Result()
	return int(n), err
}

// sessions is how many connections the benchmark database has accepted so
// far (pg_stat_database.sessions): its growth within a phase is connection
// churn, each new connection costing Postgres a backend process.
func (st *stack) sessions(ctx context.Context) int64 {
	var n int64
	_ = st.db.QueryRowContext(ctx, "SELECT sessions FROM pg_stat_database WHERE datname = $1", st.database.Name).Scan(&n)
	return n
}

// measure runs fn and records the CPU it cost the machine and the
// connections it opened.
func (st *stack) measure(ctx context.Context, fn func()) (CPU, int64) {
	s0, c0 := st.sessions(ctx), st.sampleCPU()
	fn()
	c1 := st.sampleCPU()
	return cpuBetween(c0, c1), st.sessions(ctx) - s0
}
