package web

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/labstack/echo/v4"
)

// statusOf maps the domain's error codes to HTTP statuses. It is the only
// place in Kiln that does: handlers return domain errors and never pick a
// status for a failure themselves.
var statusOf = map[string]int{
	addon.EINVALID:      http.StatusUnprocessableEntity,
	addon.EUNSUPPORTED:  http.StatusUnprocessableEntity, // a refusal Heroku shows, like EINVALID
	addon.EMALFORMED:    http.StatusBadRequest,
	addon.EUNAUTHORIZED: http.StatusUnauthorized,
	addon.EFORBIDDEN:    http.StatusForbidden,
	addon.ENOTFOUND:     http.StatusNotFound,
	addon.ECONFLICT:     http.StatusConflict,
	addon.EGONE:         http.StatusGone,
	addon.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	addon.ERATELIMIT:    http.StatusTooManyRequests,
	addon.EUNAVAILABLE:  http.StatusServiceUnavailable,
	addon.EINTERNAL:     http.StatusInternalServerError,
}

// defaultRetryAfter is the Retry-After sent with a 503 or 429 when the error
// carries no hint of its own.
const defaultRetryAfter = 5 * time.Second

const internalMessage = "Internal error."

// errorBody is the shape of every error answer, in Heroku's style
// ({"id": "rate_limit", "message": "..."}): id is machine-readable and
// stable, message is safe to show to Heroku's customers.
type errorBody struct {
	ID      string `json:"id"`
	Message string `json:"message"`
}

// handleError is the Echo HTTPErrorHandler: every failure, from a handler,
// a middleware or Echo's router, is answered here with the same JSON shape.
// Only server-side failures (5xx) are logged in full, with the request id;
// the request log line carries the error id of the others.
func (s *server) handleError(err error, c echo.Context) {
	if s.op != nil && opOwnsPath(c) {
		s.op.writeError(c, err) // the operator API's own error shape: operator_http.go
		return
	}
	id, status, message := s.describe(err)
	c.Set(errorIDKey, id)
	req := c.Request()
	s.logFailure(c, status, id, err)
	if c.Response().Committed {
		return // the handler already answered; nothing more can be sent
	}
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		wait := addon.RetryAfter(err)
		if wait <= 0 {
			wait = defaultRetryAfter
		}
		c.Response().Header().Set(echo.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	}
	var werr error
	if req.Method == http.MethodHead {
		werr = c.NoContent(status)
	} else if htmlErrors(req) {
		werr = s.writeErrorPage(c, status, message) // the customer's browser: see dashboard.go
	} else {
		werr = c.JSON(status, errorBody{ID: id, Message: message})
	}
	if werr != nil {
		s.log.Warn("writing the error answer failed", "request_id", requestIDOf(c), "err", werr)
	}
}

// describe turns any error into the id, status and caller-safe message of
// its answer. Domain errors win; Echo's own errors (no route, wrong method)
// and the body cap get the same shape; anything else is internal, its
// details kept for the log.
func (s *server) describe(err error) (id string, status int, message string) {
	var de *addon.Error
	var tooBig *http.MaxBytesError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &de):
		status, ok := statusOf[de.Code]
		if !ok {
			return addon.EINTERNAL, http.StatusInternalServerError, internalMessage
		}
		return de.Code, status, addon.ErrorMessage(err)
	case errors.As(err, &tooBig):
		return addon.ETOOLARGE, http.StatusRequestEntityTooLarge, addon.ErrorMessage(s.tooLarge())
	case errors.As(err, &he):
		return s.describeHTTP(he)
	case errors.Is(err, context.DeadlineExceeded):
		return addon.EUNAVAILABLE, http.StatusServiceUnavailable, "A dependency took too long to answer. Please retry."
	default:
		return addon.EINTERNAL, http.StatusInternalServerError, internalMessage
	}
}

// describeHTTP gives Echo's errors ids in the domain's vocabulary where one
// fits, and Heroku-style snake_case ids otherwise.
func (s *server) describeHTTP(he *echo.HTTPError) (id string, status int, message string) {
	status = he.Code
	if status < 400 || status > 599 {
		status = http.StatusInternalServerError
	}
	for code, st := range statusOf {
		// EUNSUPPORTED shares 422 with EINVALID, whose id Echo's 422s keep.
		if st == status && code != addon.EUNSUPPORTED {
			id = code
		}
	}
	if id == "" {
		id = snake(http.StatusText(status))
	}
	switch {
	case status == http.StatusRequestEntityTooLarge:
		message = addon.ErrorMessage(s.tooLarge())
	case status == http.StatusNotFound:
		message = "Not found."
	case status == http.StatusMethodNotAllowed:
		message = "Method not allowed."
	case status >= 500:
		message = internalMessage
		if id != addon.EINTERNAL {
			message = http.StatusText(status) + "."
		}
	default:
		// Echo's 4xx messages are written for callers; anything else is not
		// shown.
		if m, ok := he.Message.(string); ok && m != "" {
			message = m
		} else {
			message = http.StatusText(status) + "."
		}
	}
	return id, status, message
}

// snake turns "Method Not Allowed" into "method_not_allowed".
func snake(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ' ' || r == '-':
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "error"
	}
	return b.String()
}

// logFailure logs a failed request in full when it is Kiln's fault or a
// dependency's (5xx): only internal errors are logged with their cause; a
// refused request is already in the request log with its error id.
func (s *server) logFailure(c echo.Context, status int, id string, err error) {
	if status < 500 {
		return
	}
	level := slog.LevelError
	if status == http.StatusServiceUnavailable {
		level = slog.LevelWarn // a dependency is down: loud, but not a bug
	}
	req := c.Request()
	s.log.LogAttrs(req.Context(), level, "request failed",
		slog.String("request_id", requestIDOf(c)),
		slog.String("method", req.Method),
		slog.String("path", req.URL.Path),
		slog.Int("status", status),
		slog.String("error", id),
		slog.String("err", err.Error()),
	)
}
