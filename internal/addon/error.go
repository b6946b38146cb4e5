package addon

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Error codes name the kinds of failure the domain distinguishes. Adapters
// translate their own failures into these so that exactly one place (the web
// adapter's error handler) maps them to HTTP statuses, and the worker decides
// between retrying and giving up without knowing which adapter failed.
const (
	EINVALID      = "invalid"      // the request is understood but refused (422)
	EUNSUPPORTED  = "unsupported"  // the resource driver cannot do this at all (422)
	EMALFORMED    = "bad_request"  // the request cannot be parsed (400)
	EUNAUTHORIZED = "unauthorized" // missing or wrong credentials (401)
	EFORBIDDEN    = "forbidden"    // credentials fine, access refused (403)
	ENOTFOUND     = "not_found"    // no such add-on (404)
	ECONFLICT     = "conflict"     // the add-on is in a state that forbids this (409)
	EGONE         = "gone"         // the add-on was deprovisioned (410)
	ETOOLARGE     = "too_large"    // request body over the cap (413)
	ERATELIMIT    = "rate_limit"   // a rate limit was hit; retry later (429)
	EUNAVAILABLE  = "unavailable"  // a dependency is down; retry later (503)
	EINTERNAL     = "internal"     // a bug or an unexpected failure (500)
)

// Error is the domain's error type. Code is machine-readable and stable;
// Message is safe to show to Heroku's customers and operators; Err keeps the
// underlying cause for logs (never shown to callers). RetryAfter carries a
// server's hint (Retry-After) so the worker's backoff can honour it.
type Error struct {
	Code       string
	Message    string
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	switch {
	case e.Err != nil && e.Message != "":
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	case e.Err != nil:
		return fmt.Sprintf("%s: %v", e.Code, e.Err)
	default:
		return fmt.Sprintf("%s: %s", e.Code, e.Message)
	}
}

// Unwrap lets errors.Is and errors.As reach the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf builds a domain error whose message is shown to callers.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Unsupported is the error of a driver asked for something its resources
// cannot do (Driver.Abilities says so in advance): a refusal, never worth
// a retry, that callers can show as it is.
func Unsupported(driver, action string) *Error {
	return Errorf(EUNSUPPORTED, "The %s driver cannot %s.", driver, action)
}

// Wrap builds a domain error around a cause that stays out of the message.
func Wrap(code string, err error, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Err: err}
}

// ErrorCode returns the code of the outermost domain error in err's chain,
// EINTERNAL for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the caller-safe message of err: the domain error's
// message, or a generic sentence for anything else, so internal details never
// leak into HTTP answers.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Message != "" {
		return e.Message
	}
	return "Internal error."
}

// RetryAfter returns the retry hint carried by err, or zero.
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// Transient reports whether err is worth retrying: a dependency that was
// down, slow or rate limiting. Anything that is not a domain error (a network
// error, a timeout) is treated as transient, because giving up on an accepted
// add-on is the worse mistake; the provision deadline bounds the retries.
func Transient(err error) bool {
	switch ErrorCode(err) {
	case EUNAVAILABLE, ERATELIMIT, EINTERNAL:
		return true
	}
	return false
}

// MaxEchoLen is how much of a caller's value a message repeats: enough to
// recognise it, not enough for a hostile caller to make Heroku show the
// customer a page of text.
const MaxEchoLen = 64

// Clip cuts a value the caller sent to max characters for an error
// message, marking the cut with "…", and replaces bytes that are not UTF-8
// so the message stays valid JSON text.
func Clip(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return string(r[:max]) + "…"
}

// UnreadableError comes back, beside the add-ons that could be read, from
// a sweep's listing (Store.Stale, Requeued, Leftovers) that met stored
// add-ons it cannot read: sealed with an ENCRYPTION_KEY no longer
// configured, or damaged. One such row must not stop every sweep for every
// add-on, fleet-wide: the sweep goes on with the rest and reports these.
type UnreadableError struct {
	IDs []ID  // the add-ons left out, in the listing's order
	Err error // why the first could not be read
}

func (e *UnreadableError) Error() string {
	if len(e.IDs) == 0 {
		return fmt.Sprintf("listed add-ons cannot be read: %v", e.Err)
	}
	return fmt.Sprintf("%d listed add-on(s) cannot be read, first %s: %v", len(e.IDs), e.IDs[0], e.Err)
}

func (e *UnreadableError) Unwrap() error { return e.Err }

// Unreadable returns the add-ons a listing's err says it left out, and
// whether err is only that (the listing's other add-ons are good to use):
// err must be the *UnreadableError itself, not one joined with another
// failure.
func Unreadable(err error) (ids []ID, only bool) {
	u, ok := err.(*UnreadableError)
	if !ok {
		return nil, false
	}
	return u.IDs, true
}
