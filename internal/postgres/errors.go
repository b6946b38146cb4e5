package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"github.com/kiln-dev/kiln/internal/addon"
)

// dbError maps a driver failure to a domain error, so the worker knows
// whether to retry and the web adapter which status to answer. id names the
// add-on concerned (by id or name), when there is one, for not-found errors.
func dbError[K addon.ID | string](err error, id K) error {
	if err == nil {
		return nil
	}
	var de *addon.Error
	if errors.As(err, &de) {
		return err
	}
	if errors.Is(err, gorm.ErrRecordNotFound) || errors.Is(err, sql.ErrNoRows) {
		return addon.NotFound(id)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505": // unique_violation
			return addon.Wrap(addon.ECONFLICT, err, "The record already exists.")
		case pe.Code == "22021", pe.Code == "22P05": // character_not_in_repertoire (a NUL, bad UTF-8), untranslatable_character (\u0000 in jsonb)
			return addon.Wrap(addon.EINVALID, err, "The request holds text the database cannot store (a NUL byte or bytes that are not UTF-8).")
		case strings.HasPrefix(pe.Code, "22"): // data exception: a value the column cannot take
			return addon.Wrap(addon.EINVALID, err, "The request holds a value the database cannot store.")
		case pe.Code == "40001", pe.Code == "40P01", // serialization_failure, deadlock_detected
			pe.Code == "55P03", pe.Code == "57014", // lock_not_available, query_canceled (timeouts)
			strings.HasPrefix(pe.Code, "08"),  // connection exceptions
			strings.HasPrefix(pe.Code, "53"),  // insufficient resources (too many connections)
			strings.HasPrefix(pe.Code, "57P"): // server shutting down or starting
			return addon.Wrap(addon.EUNAVAILABLE, err, "The database is unavailable; try again later.")
		}
		return addon.Wrap(addon.EINTERNAL, err, "Database error.")
	}
	if unavailable(err) {
		return addon.Wrap(addon.EUNAVAILABLE, err, "The database is unavailable; try again later.")
	}
	return addon.Wrap(addon.EINTERNAL, err, "Database error.")
}

// unavailable reports failures to reach the server at all: refused or
// dropped connections and timeouts, which are worth retrying later.
func unavailable(err error) bool {
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce), errors.As(err, &ne), pgconn.Timeout(err):
		return true
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return true
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	case errors.Is(err, pgconn.ErrConnClosed), pgconn.SafeToRetry(err):
		// A pooled connection died (a failover, a restart): the request is
		// worth retrying, so Heroku must get 503, not 500.
		return true
	}
	return false
}

func isUndefinedTable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42P01"
}
