package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/kiln-dev/kiln/internal/addon"
)

// This file holds the store's hot paths — Create (every provision call
// Heroku makes), Get and Update (every pipeline step) — written as plain SQL
// over the pool instead of through GORM. The benchmark (cmd/kiln-bench,
// docs/performance.md) showed them dominated by round trips and GORM's
// per-call reflection: Create took five round trips in a transaction
// (BEGIN, INSERT, INSERT event, SELECT, COMMIT) and now takes one statement;
// Update took six and now takes two (pipelined). The semantics are the ones
// documented on Create and Update in store.go.

// addonColumns is every column addonRow reads, in the order scanRow scans.
const addonColumns = "id, name, plan, pending_plan, region, callback_url, options, log_input_url, log_drain_token, " +
	"state, reason, grant_code, grant_expires_at, access_token, refresh_token, token_expires_at, heroku_user_id, vars, " +
	"grant_exchanged_at, resource_created_at, config_pushed_at, provisioned_at, deprovisioned_at, deadline, created_at, updated_at, " +
	"exchange_started_at, requeue, halted_job, halt_reason, lease_owner, lease_until, fence"

// scanRow reads one addons row selected as addonColumns.
func scanRow(s interface{ Scan(...any) error }, r *addonRow) error {
	return s.Scan(&r.ID, &r.Name, &r.Plan, &r.PendingPlan, &r.Region, &r.CallbackURL, &r.Options,
		&r.LogInputURL, &r.LogDrainToken, &r.State, &r.Reason, &r.GrantCode, &r.GrantExpiresAt,
		&r.AccessToken, &r.RefreshToken, &r.TokenExpiresAt, &r.HerokuUserID, &r.Vars,
		&r.GrantExchangedAt, &r.ResourceCreatedAt, &r.ConfigPushedAt, &r.ProvisionedAt,
		&r.DeprovisionedAt, &r.Deadline, &r.CreatedAt, &r.UpdatedAt,
		&r.ExchangeStartedAt, &r.Requeue, &r.HaltedJob, &r.HaltReason, &r.LeaseOwner, &r.LeaseUntil, &r.Fence)
}

// sortedColumns returns the column names of cols in a fixed order, so the
// same write always produces the same SQL text and pgx's per-connection
// statement cache serves it. columns() always writes the same set, so the
// sorted list is kept and only checked against cols; sorting two dozen
// names on every call was a tenth of Create's CPU on the client side.
func sortedColumns(cols map[string]any) []string {
	if p := lastColumns.Load(); p != nil && len(*p) == len(cols) {
		same := true
		for _, k := range *p {
			if _, ok := cols[k]; !ok {
				same = false
				break
			}
		}
		if same {
			return *p
		}
	}
	names := make([]string, 0, len(cols))
	for k := range cols {
		names = append(names, k)
	}
	slices.Sort(names)
	lastColumns.Store(&names)
	return names
}

// lastColumns is the column list sortedColumns last built; it is never
// modified once stored.
var lastColumns atomic.Pointer[[]string]

// create is Create for an add-on with at most one new event: one
// statement when the add-on is new, two when it already existed.
func (db *DB) create(ctx context.Context, a *addon.Addon, cols map[string]any, events []addon.Event) (*addon.Addon, bool, error) {
	var ev *addon.Event
	if len(events) == 1 {
		ev = &events[0]
	}
	stored, created, err := db.createOne(ctx, a, cols, ev)
	if err == nil && created {
		return stored, true, nil
	}
	var row addonRow
	if err == nil {
		row, err = db.getRow(ctx, a.ID)
	}
	if err != nil {
		return nil, false, dbError(err, a.ID)
	}
	stored, err = db.addon(&row)
	if err != nil {
		return nil, false, err
	}
	return stored, false, nil
}

// createOne inserts the add-on and its (at most one) event in one statement:
// ON CONFLICT DO NOTHING lets the primary key decide between concurrent
// duplicates, and the event is inserted only for a row actually inserted.
// It reports created=false when the add-on already existed (the statement
// returns no row; its snapshot may predate the winner's commit, so the
// caller reads the stored add-on with a statement of its own).
//
// A new add-on is not read back: what was written is a, so the stored
// add-on is a copy of it with the database's timestamps, rounded as
// Postgres stores times (see written). Reading back all 26 columns and
// opening the secrets just sealed cost a fifth of a provision call's CPU.
// Update does the same.
func (db *DB) createOne(ctx context.Context, a *addon.Addon, cols map[string]any, ev *addon.Event) (*addon.Addon, bool, error) {
	names := sortedColumns(cols)
	query := stmts.get(names, "create", ev != nil, func() string {
		var q strings.Builder
		q.WriteString("WITH ins AS (INSERT INTO addons (id, created_at, updated_at")
		for _, c := range names {
			q.WriteString(", " + c)
		}
		q.WriteString(") VALUES ($1, coalesce($2::timestamptz, now()), now()")
		for i := range names {
			fmt.Fprintf(&q, ", $%d", i+3)
		}
		q.WriteString(") ON CONFLICT (id) DO NOTHING RETURNING id, created_at, updated_at)")
		if ev != nil {
			n := len(names) + 3
			fmt.Fprintf(&q, ", ev AS (INSERT INTO addon_events (addon_id, kind, state, message, created_at) SELECT id, $%d, $%d, $%d, $%d::timestamptz FROM ins)", n, n+1, n+2, n+3)
		}
		q.WriteString(" SELECT created_at, updated_at FROM ins")
		return q.String()
	})
	args := make([]any, 0, len(names)+6)
	args = append(args, a.ID, nil)
	if !a.CreatedAt.IsZero() {
		args[1] = a.CreatedAt.UTC()
	}
	for _, c := range names {
		args = append(args, cols[c])
	}
	if ev != nil {
		at := ev.At.UTC()
		if ev.At.IsZero() {
			at = time.Now().UTC()
		}
		args = append(args, ev.Kind, string(ev.State), ev.Message, at)
	}
	var createdAt, updatedAt time.Time
	if err := db.gate.enter(ctx); err != nil {
		return nil, false, err
	}
	err := db.sql.QueryRowContext(ctx, query, args...).Scan(&createdAt, &updatedAt)
	db.gate.leave()
	if err == sql.ErrNoRows {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return written(a, createdAt, updatedAt), true, nil
}

// written is the add-on as a read would return it right after a wrote it:
// a copy (maps and pointers too, so the caller's a stays its own), times
// in UTC at the microsecond precision Postgres keeps (pgx truncates), the
// row's timestamps from the database, and the audit trail already saved.
func written(a *addon.Addon, createdAt, updatedAt time.Time) *addon.Addon {
	c := *a
	c.TakeEvents()
	c.Options = maps.Clone(a.Options)
	c.Vars = maps.Clone(a.Vars)
	if a.Grant != nil {
		g := *a.Grant
		g.ExpiresAt = stored(g.ExpiresAt)
		c.Grant = &g
	}
	if a.Tokens != nil {
		t := *a.Tokens
		t.ExpiresAt = stored(t.ExpiresAt)
		c.Tokens = &t
	}
	c.GrantExchangedAt = stored(a.GrantExchangedAt)
	c.ResourceCreatedAt = stored(a.ResourceCreatedAt)
	c.ConfigPushedAt = stored(a.ConfigPushedAt)
	c.ProvisionedAt = stored(a.ProvisionedAt)
	c.DeprovisionedAt = stored(a.DeprovisionedAt)
	c.Deadline = stored(a.Deadline)
	c.ExchangeStartedAt = stored(a.ExchangeStartedAt)
	c.LeaseUntil = stored(a.LeaseUntil)
	c.CreatedAt = createdAt.UTC()
	c.UpdatedAt = updatedAt.UTC()
	return &c
}

// stored is t as a timestamptz column gives it back.
func stored(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// getRow reads one add-on row.
func (db *DB) getRow(ctx context.Context, id addon.ID) (addonRow, error) {
	var row addonRow
	if err := db.gate.enter(ctx); err != nil {
		return row, err
	}
	defer db.gate.leave()
	err := scanRow(db.sql.QueryRowContext(ctx, "SELECT "+addonColumns+" FROM addons WHERE id = $1", id), &row)
	return row, err
}

// gate lets at most as many callers at the pool as it has connections, in
// the order they came. database/sql hands a freed connection to a random
// waiter, so when Heroku's provision calls outnumber the connections some
// calls lost that draw again and again; the benchmark's accept p99 was
// four to five times its median. Waiting here instead is first come, first
// served, and database/sql then finds a free connection. Only the single-
// statement hot paths (Create, Get) pass the gate: they never nest, so it
// cannot deadlock; Update holds its connection across fn and stays out.
type gate chan struct{}

func (g gate) enter(ctx context.Context) error {
	if g == nil {
		return nil
	}
	select {
	case g <- struct{}{}:
		return nil // a free slot wins even over an ended context
	default:
	}
	select {
	case g <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g gate) leave() {
	if g != nil {
		<-g
	}
}

// updateStatement is the UPDATE that writes cols to the add-on, returning
// its new updated_at, with its arguments. With exactly one event the event's
// insert rides in the same statement; otherwise the caller inserts the
// events after it, one statement each, in order, because a multi-row insert
// does not promise the order in which ids are drawn. updated_at is
// clock_timestamp(), not now(): now() is when the transaction began,
// possibly before a concurrent update we waited for committed.
func updateStatement(id addon.ID, cols map[string]any, events []addon.Event) (string, []any) {
	names := sortedColumns(cols)
	one := len(events) == 1
	query := stmts.get(names, "update", one, func() string {
		var q strings.Builder
		if one {
			q.WriteString("WITH ev AS (INSERT INTO addon_events (addon_id, kind, state, message, created_at) VALUES ($2::uuid, $3, $4, $5, $6::timestamptz)) ")
		}
		q.WriteString("UPDATE addons SET updated_at = clock_timestamp()")
		n := 2
		if one {
			n = 7
		}
		for i, c := range names {
			fmt.Fprintf(&q, ", %s = $%d", c, n+i)
		}
		q.WriteString(" WHERE id = $1 RETURNING updated_at")
		return q.String()
	})
	args := make([]any, 0, len(names)+6)
	args = append(args, id)
	if one {
		args = append(args, eventArgs(id, events[0])...)
	}
	for _, c := range names {
		args = append(args, cols[c])
	}
	return query, args
}

// update is Update over one of the pool's connections driven natively
// (pgx), so the transaction takes two round trips instead of four: BEGIN
// and SELECT ... FOR UPDATE go out together, then fn runs, then the UPDATE
// (carrying the event) and COMMIT go out together. A transaction left open
// by a failure is rolled back here; were that to fail too, the pgx driver
// discards a connection still in a transaction when it returns to the pool.
func (db *DB) update(ctx context.Context, id addon.ID, fence *fencing, fn func(ctx context.Context, a *addon.Addon) error) (*addon.Addon, error) {
	conn, err := db.sql.Conn(ctx)
	if err != nil {
		return nil, dbError(err, id)
	}
	defer conn.Close()
	var fnErr error
	var saved *addon.Addon
	err = conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("postgres: unexpected driver connection %T", dc)
		}
		pc := sc.Conn()
		var err error
		saved, err = db.updateOn(ctx, pc, id, fence, fn, &fnErr)
		if !pc.IsClosed() && pc.PgConn().TxStatus() != 'I' {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_, _ = pc.Exec(rctx, "ROLLBACK")
			cancel()
		}
		return err
	})
	if fnErr != nil {
		return nil, fnErr
	}
	if err != nil {
		return nil, dbError(err, id)
	}
	return saved, nil
}

// updateOn runs Update's transaction on pc. Like Create, it does not read
// the row back: the add-on saved is a as fn left it, with the new
// updated_at (see written).
func (db *DB) updateOn(ctx context.Context, pc *pgx.Conn, id addon.ID, fence *fencing, fn func(ctx context.Context, a *addon.Addon) error, fnErr *error) (*addon.Addon, error) {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue("SELECT "+addonColumns+" FROM addons WHERE id = $1 FOR UPDATE", id)
	br := pc.SendBatch(ctx, b)
	var row addonRow
	_, err := br.Exec()
	if err == nil {
		err = scanRow(br.QueryRow(), &row)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if fence != nil && row.Fence != fence.fence {
		// The lease lapsed and another writer claimed the add-on: this
		// writer's result is stale and must not be recorded.
		*fnErr = addon.LeaseLost(id)
		return nil, *fnErr
	}
	a, err := db.addon(&row)
	if err != nil {
		return nil, err
	}
	if *fnErr = fn(ctx, a); *fnErr != nil {
		return nil, *fnErr
	}
	cols, err := db.columns(a)
	if err != nil {
		return nil, err
	}
	events := a.TakeEvents()
	query, args := updateStatement(id, cols, events)
	b = &pgx.Batch{}
	b.Queue(query, args...)
	if len(events) > 1 {
		for _, e := range events {
			b.Queue(insertEvent, eventArgs(id, e)...)
		}
	}
	if fence != nil && fence.release {
		b.Queue(releaseLease, id, fence.fence)
		a.LeaseOwner, a.LeaseUntil = "", time.Time{}
	}
	b.Queue("COMMIT")
	br = pc.SendBatch(ctx, b)
	var updatedAt time.Time
	err = br.QueryRow().Scan(&updatedAt)
	for i := 0; err == nil && len(events) > 1 && i < len(events); i++ {
		_, err = br.Exec()
	}
	if err == nil && fence != nil && fence.release {
		_, err = br.Exec() // release the lease
	}
	if err == nil {
		_, err = br.Exec() // COMMIT
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return written(a, a.CreatedAt, updatedAt), nil
}

// insertEvent records one line of an add-on's audit trail.
const insertEvent = "INSERT INTO addon_events (addon_id, kind, state, message, created_at) VALUES ($1::uuid, $2, $3, $4, $5::timestamptz)"

// eventArgs are the arguments of insertEvent for e.
func eventArgs(id addon.ID, e addon.Event) []any {
	at := e.At.UTC()
	if e.At.IsZero() {
		at = time.Now().UTC()
	}
	return []any{id, e.Kind, string(e.State), e.Message, at}
}

// stmtCache keeps the SQL text of the hot writes, built once per column
// set: the set columns() writes is fixed, so in practice each write has one
// statement, reused for the life of the process (and prepared once per
// connection by pgx's statement cache).
type stmtCache struct {
	mu      sync.Mutex
	entries []stmtEntry
}

type stmtEntry struct {
	kind  string
	flag  bool
	names []string
	sql   string
}

var stmts stmtCache

func (c *stmtCache) get(names []string, kind string, flag bool, build func() string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.entries {
		if e.kind == kind && e.flag == flag && slices.Equal(e.names, names) {
			return e.sql
		}
	}
	q := build()
	c.entries = append(c.entries, stmtEntry{kind: kind, flag: flag, names: slices.Clone(names), sql: q})
	return q
}
