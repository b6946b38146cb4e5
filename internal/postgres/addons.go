package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/gorm"

	"github.com/kiln-dev/kiln/internal/addon"
)

// This file is an add-on's life in the store: Create (every provision call
// Heroku makes), Get and Update (every pipeline step). They are the hot
// paths, so each is one hand-written statement on the connections of the
// store's GORM session (hotRow; Update two round trips on one connection),
// not GORM's builder: the benchmark (cmd/kiln-bench, docs/performance.md)
// found them dominated by round trips and by GORM's per-call work. A new
// or updated add-on is not read back: what was written is known, so the
// stored add-on is a copy of it with the database's timestamps (see
// written). Reading back all the columns and opening the secrets just
// sealed cost a fifth of a provision call's CPU.

// insertAddon is Create's one statement: $1 the id, $2 created_at, then
// the values of addonWrites, then the first event (NULL when there is
// none), inserted only for a row actually inserted. ON CONFLICT DO
// NOTHING lets the primary key decide between concurrent duplicates. It
// returns no row when the add-on already existed.
var insertAddon = fmt.Sprintf("WITH ins AS (INSERT INTO addons (id, created_at, updated_at, "+addonWrites+") "+
	"VALUES ($1, coalesce($2::timestamptz, now()), now(), %s) "+
	"ON CONFLICT (id) DO NOTHING RETURNING id, created_at, updated_at), "+
	"ev AS ("+insertEventInto+
	"SELECT id, $%[2]d, $%d, $%d, $%d::timestamptz FROM ins WHERE $%[2]d::text IS NOT NULL) "+
	"SELECT created_at, updated_at FROM ins",
	placeholders(3, addonWriteCount), 3+addonWriteCount, 4+addonWriteCount, 5+addonWriteCount, 6+addonWriteCount)

// selectAddon reads one add-on; selectAddonForUpdate also takes its row
// lock, for the rest of the transaction.
const (
	selectAddon          = "SELECT " + addonColumns + " FROM addons WHERE id = $1"
	selectAddonForUpdate = selectAddon + " FOR UPDATE"
)

// updateAddon is Update's write: $1 the id, then every column of
// addonWrites, then the first event (NULL when there is none) in the same
// statement. It returns the new updated_at, which is clock_timestamp(),
// not now(): now() is when the transaction began, possibly before a
// concurrent update we waited for committed.
var updateAddon = fmt.Sprintf("WITH ev AS ("+insertEventInto+
	"SELECT $1::uuid, $%[2]d, $%d, $%d, $%d::timestamptz WHERE $%[2]d::text IS NOT NULL) "+
	"UPDATE addons SET updated_at = "+nextUpdatedAt+", ("+addonWrites+") = ROW(%[1]s) "+
	"WHERE id = $1 RETURNING updated_at",
	placeholders(2, addonWriteCount), 2+addonWriteCount, 3+addonWriteCount, 4+addonWriteCount, 5+addonWriteCount)

// placeholders is "$from, ..., $(from+n-1)": the parameters of n values
// in a row, so the statements follow addonWrites as it grows.
func placeholders(from, n int) string {
	ps := make([]string, n)
	for i := range ps {
		ps[i] = "$" + strconv.Itoa(from+i)
	}
	return strings.Join(ps, ", ")
}

// nextUpdatedAt is the updated_at every write of an add-on's data sets:
// the database's clock, but always after the row's previous value, so the
// row's updated_at never repeats, even were the clock stepped back or a
// failover to take it to a server whose clock is behind. Record's
// one-statement path (recordSeen) relies on that: a copy whose updated_at
// is still the row's is the row.
const nextUpdatedAt = "greatest(clock_timestamp(), updated_at + interval '1 microsecond')"

// addonWriteCount is how many values appendValues appends.
const addonWriteCount = 28

// Create records a new add-on with INSERT ... ON CONFLICT DO NOTHING, so the
// primary key, not a read-then-write, decides between concurrent duplicates:
// exactly one caller gets created=true; the others get the stored add-on.
// updated_at is the database's clock; created_at is a.CreatedAt (Heroku's
// request time as the service saw it) or the database's clock when zero.
//
// The add-on and its first event are one statement (insertAddon). Further
// events (none in Kiln today) follow one statement each, in order, in the
// same transaction, because a multi-row insert does not promise the order
// in which ids are drawn. A duplicate costs a second statement, reading the
// stored add-on: the insert's snapshot may predate the winner's commit.
func (db *DB) Create(ctx context.Context, a *addon.Addon) (*addon.Addon, bool, error) {
	if !addon.ValidID(string(a.ID)) {
		return nil, false, addon.Errorf(addon.EINVALID, "The uuid %q is not a valid UUID.", a.ID)
	}
	args := make([]any, 2, 2+addonWriteCount+4)
	args[0] = a.ID
	if !a.CreatedAt.IsZero() {
		args[1] = a.CreatedAt.UTC()
	}
	args, err := db.appendValues(args, a)
	if err != nil {
		return nil, false, err
	}
	events := a.TakeEvents()
	args = appendFirstEvent(args, events)

	var created bool
	var createdAt, updatedAt time.Time
	insert := func(tx *gorm.DB) error {
		err := hotRow(ctx, tx, insertAddon, args...).Scan(&createdAt, &updatedAt)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // the add-on existed: nothing was written
		}
		if err != nil {
			return err
		}
		created = true
		return insertEvents(tx, a.ID, events[min(1, len(events)):])
	}
	if len(events) <= 1 {
		err = db.gate.enter(ctx)
		if err == nil {
			err = insert(db.gorm)
			db.gate.leave()
		}
	} else {
		err = db.transact(ctx, insert)
	}
	if err != nil {
		return nil, false, dbError(err, a.ID)
	}
	if created {
		return written(a, createdAt, updatedAt), true, nil
	}
	stored, err := db.Get(ctx, a.ID)
	if err != nil {
		return nil, false, err
	}
	return stored, false, nil
}

// Get returns the add-on, or addon.NotFound.
func (db *DB) Get(ctx context.Context, id addon.ID) (*addon.Addon, error) {
	if !addon.ValidID(string(id)) {
		return nil, addon.NotFound(id)
	}
	var row addonRow
	err := db.gate.enter(ctx)
	if err == nil {
		err = scanRow(hotRow(ctx, db.gorm, selectAddon, id), &row)
		db.gate.leave()
	}
	if err != nil {
		return nil, dbError(err, id)
	}
	return db.addon(&row)
}

// Update runs fn on the add-on under a row lock (SELECT ... FOR UPDATE) and
// saves the add-on and its new events in the same transaction, so concurrent
// updates of one add-on queue behind each other and none is lost. An error
// from fn rolls everything back and is returned exactly as fn returned it.
func (db *DB) Update(ctx context.Context, id addon.ID, fn func(ctx context.Context, a *addon.Addon) error) (*addon.Addon, error) {
	if !addon.ValidID(string(id)) {
		return nil, addon.NotFound(id)
	}
	return db.update(ctx, id, nil, fn)
}

// update is Update, and Record with a fence. Its transaction takes two
// round trips: on one of the pool's connections, taken through GORM
// (Connection) and driven natively (pgx), BEGIN and SELECT ... FOR UPDATE
// go out together as one pipelined batch, then fn runs, then the UPDATE
// (carrying the first event), any further events, the lease's release and
// COMMIT go out together. The same transaction through GORM's Transaction
// takes four round trips and cost 70% more client CPU and 15% more time per
// Update (BenchmarkUpdate); Update was 40% of the worker's CPU
// (docs/performance.md). A transaction left open by a failure is rolled
// back here; were that to fail too, the pgx driver discards a connection
// still in a transaction when it returns to the pool. Like Create, it does
// not read the row back: the add-on saved is a as fn left it, with the new
// updated_at (see written).
func (db *DB) update(ctx context.Context, id addon.ID, fence *fencing, fn func(ctx context.Context, a *addon.Addon) error) (*addon.Addon, error) {
	var fnErr error
	var saved *addon.Addon
	err := db.gorm.WithContext(ctx).Connection(func(tx *gorm.DB) error {
		conn, ok := tx.Statement.ConnPool.(*sql.Conn)
		if !ok {
			return fmt.Errorf("postgres: unexpected connection %T", tx.Statement.ConnPool)
		}
		return conn.Raw(func(dc any) error {
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
	})
	if fnErr != nil {
		return nil, fnErr
	}
	if err != nil {
		return nil, dbError(err, id)
	}
	return saved, nil
}

// updateOn runs update's transaction on pc, in two batches.
func (db *DB) updateOn(ctx context.Context, pc *pgx.Conn, id addon.ID, fence *fencing, fn func(ctx context.Context, a *addon.Addon) error, fnErr *error) (*addon.Addon, error) {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(selectAddonForUpdate, id)
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
	args := make([]any, 1, 1+addonWriteCount+4)
	args[0] = id
	if args, err = db.appendValues(args, a); err != nil {
		return nil, err
	}
	events := a.TakeEvents()
	b = &pgx.Batch{}
	b.Queue(updateAddon, appendFirstEvent(args, events)...)
	for _, e := range events[min(1, len(events)):] {
		b.Queue(insertEvent, eventArgs(id, e)...)
	}
	if fence != nil && fence.release {
		b.Queue(releaseLease, id, fence.fence)
		a.LeaseOwner, a.LeaseUntil = "", time.Time{}
	}
	b.Queue("COMMIT")
	br = pc.SendBatch(ctx, b)
	var updatedAt time.Time
	err = br.QueryRow().Scan(&updatedAt)
	for n := b.Len() - 1; err == nil && n > 0; n-- {
		_, err = br.Exec() // the further events, the release and COMMIT
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return written(a, a.CreatedAt, updatedAt), nil
}

// hotRow runs one of the hot statements, Create's and Get's, on the
// connections of GORM's session tx (gorm.ConnPool: the store's pool, or
// the connection of tx's transaction), like Raw(query, args...).Row() but
// without building the statement anew: Raw copies the SQL byte by byte
// and boxes each argument twice, which for Create's 33 arguments was 90
// allocations and 15% more client CPU per provision call (measured with
// BenchmarkCreate; GORM's PrepareStmt session prepares what pgx's
// statement cache already prepares, and builds the statement all the same).
func hotRow(ctx context.Context, tx *gorm.DB, query string, args ...any) *sql.Row {
	return tx.Statement.ConnPool.QueryRowContext(ctx, query, args...)
}

// written is the add-on as a read would return it right after a wrote it:
// a copy (maps and pointers too, so the caller's a stays its own), times
// in UTC at the microsecond precision Postgres keeps (pgx truncates), the
// row's timestamps from the database, and the audit trail already saved.
func written(a *addon.Addon, createdAt, updatedAt time.Time) *addon.Addon {
	c := a.Clone()
	if c.Grant != nil {
		c.Grant.ExpiresAt = stored(c.Grant.ExpiresAt)
	}
	if c.Tokens != nil {
		c.Tokens.ExpiresAt = stored(c.Tokens.ExpiresAt)
	}
	c.GrantExchangedAt = stored(a.GrantExchangedAt)
	c.ResourceCreatedAt = stored(a.ResourceCreatedAt)
	c.ConfigPushedAt = stored(a.ConfigPushedAt)
	c.ProvisionedAt = stored(a.ProvisionedAt)
	c.DeprovisionedAt = stored(a.DeprovisionedAt)
	c.Deadline = stored(a.Deadline)
	c.ExchangeStartedAt = stored(a.ExchangeStartedAt)
	c.PendingPlanAt = stored(a.PendingPlanAt)
	c.LeaseUntil = stored(a.LeaseUntil)
	c.CreatedAt = createdAt.UTC()
	c.UpdatedAt = updatedAt.UTC()
	return c
}

// stored is t as a timestamptz column gives it back.
func stored(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}
