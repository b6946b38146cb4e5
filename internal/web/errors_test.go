package web_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/kiln-dev/kiln/internal/addon"
)

// TestErrorHandler drives the one error handler through routes that fail in
// every way a handler, a middleware or Echo itself can.
func TestErrorHandler(t *testing.T) {
	t.Parallel()
	e, logs := bare(t)
	e.POST("/only-post", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })

	tests := []struct {
		name       string
		method     string
		path       string
		err        error // returned by a route at path; nil: path is routed as is
		panics     bool
		want       int
		wantID     string
		wantMsg    string
		retryAfter string
		logged     bool   // logged in full as a server-side failure
		hidden     string // must not appear in the answer
	}{
		{name: "invalid", err: addon.Errorf(addon.EINVALID, "Unknown plan."), want: 422, wantID: "invalid", wantMsg: "Unknown plan."},
		{name: "unsupported", err: addon.Unsupported("http", "roll credentials"), want: 422, wantID: "unsupported", wantMsg: "The http driver cannot roll credentials."},
		{name: "echo 422 keeps the id invalid", err: echo.NewHTTPError(http.StatusUnprocessableEntity, "nope"), want: 422, wantID: "invalid", wantMsg: "nope"},
		{name: "malformed", err: addon.Errorf(addon.EMALFORMED, "Bad JSON."), want: 400, wantID: "bad_request", wantMsg: "Bad JSON."},
		{name: "unauthorized", err: addon.Errorf(addon.EUNAUTHORIZED, "Who?"), want: 401, wantID: "unauthorized", wantMsg: "Who?"},
		{name: "forbidden", err: addon.Errorf(addon.EFORBIDDEN, "No."), want: 403, wantID: "forbidden", wantMsg: "No."},
		{name: "not found", err: addon.NotFound("x"), want: 404, wantID: "not_found", wantMsg: "Add-on x not found.", hidden: "no such add-on"},
		{name: "conflict", err: addon.Errorf(addon.ECONFLICT, "Busy."), want: 409, wantID: "conflict", wantMsg: "Busy."},
		{name: "gone", err: addon.Errorf(addon.EGONE, "Gone."), want: 410, wantID: "gone", wantMsg: "Gone."},
		{name: "too large", err: addon.Errorf(addon.ETOOLARGE, "Big."), want: 413, wantID: "too_large", wantMsg: "Big."},
		{name: "rate limit with hint", err: &addon.Error{Code: addon.ERATELIMIT, Message: "Slow down.", RetryAfter: 30 * time.Second}, want: 429, wantID: "rate_limit", wantMsg: "Slow down.", retryAfter: "30"},
		{name: "unavailable with hint", err: &addon.Error{Code: addon.EUNAVAILABLE, Message: "Down.", RetryAfter: 1500 * time.Millisecond}, want: 503, wantID: "unavailable", wantMsg: "Down.", retryAfter: "2", logged: true},
		{name: "unavailable without hint", err: addon.Wrap(addon.EUNAVAILABLE, errors.New("dial tcp 10.0.0.7:5432"), "Down."), want: 503, wantID: "unavailable", wantMsg: "Down.", retryAfter: "5", logged: true, hidden: "10.0.0.7"},
		{name: "internal keeps the cause out", err: addon.Wrap(addon.EINTERNAL, errors.New("pq: secret detail"), "Database error."), want: 500, wantID: "internal", wantMsg: "Database error.", logged: true, hidden: "secret detail"},
		{name: "wrapped domain error", err: fmt.Errorf("provision: %w", addon.Errorf(addon.EGONE, "Gone.")), want: 410, wantID: "gone", wantMsg: "Gone."},
		{name: "unknown code", err: addon.Errorf("weird", "Weird."), want: 500, wantID: "internal", wantMsg: "Internal error.", logged: true},
		{name: "plain error", err: errors.New("postgres://user:hunter2@db/kiln refused"), want: 500, wantID: "internal", wantMsg: "Internal error.", logged: true, hidden: "hunter2"},
		{name: "deadline", err: fmt.Errorf("query: %w", context.DeadlineExceeded), want: 503, wantID: "unavailable", retryAfter: "5", logged: true},
		{name: "echo error", err: echo.NewHTTPError(http.StatusTeapot, "short and stout"), want: 418, wantID: "im_a_teapot", wantMsg: "short and stout"},
		{name: "echo 413", err: echo.ErrStatusRequestEntityTooLarge, want: 413, wantID: "too_large", wantMsg: "The request body is larger than 64 KiB."},
		{name: "echo 500", err: echo.NewHTTPError(http.StatusInternalServerError, "internal detail"), want: 500, wantID: "internal", wantMsg: "Internal error.", logged: true, hidden: "internal detail"},
		{name: "panic", panics: true, want: 500, wantID: "internal", wantMsg: "Internal error.", logged: true, hidden: "kaboom"},
		{name: "no route", path: "/nowhere", want: 404, wantID: "not_found", wantMsg: "Not found."},
		{name: "wrong method", method: http.MethodGet, path: "/only-post", want: 405, wantID: "method_not_allowed", wantMsg: "Method not allowed."},
		{name: "head gets no body", method: http.MethodHead, err: addon.Errorf(addon.EGONE, "Gone."), want: 410},
	}
	for i, tt := range tests {
		path := tt.path
		if path == "" {
			path = fmt.Sprintf("/fail/%d", i)
			err, panics := tt.err, tt.panics
			e.Any(path, func(c echo.Context) error {
				if panics {
					panic("kaboom")
				}
				return err
			})
		}
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			reqID := fmt.Sprintf("errors-%d", i)
			a := serve(t, e, request{method: method, path: path, header: map[string]string{"X-Request-Id": reqID}})
			if a.status != tt.want {
				t.Fatalf("status %d, want %d: %s", a.status, tt.want, a.raw)
			}
			if method == http.MethodHead {
				if a.raw != "" {
					t.Errorf("HEAD answer has a body: %q", a.raw)
				}
				return
			}
			if a.ID != tt.wantID || (tt.wantMsg != "" && a.Msg != tt.wantMsg) || a.Msg == "" {
				t.Errorf("body %s, want id %q message %q", a.raw, tt.wantID, tt.wantMsg)
			}
			if ct := a.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if got := a.header.Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tt.retryAfter)
			}
			if tt.hidden != "" && strings.Contains(a.raw, tt.hidden) {
				t.Errorf("the answer leaks %q: %s", tt.hidden, a.raw)
			}
			full := logs.lines("request failed", "request_id="+reqID)
			if tt.logged && len(full) != 1 {
				t.Errorf("want the failure logged in full once, got %q", full)
			}
			if !tt.logged && len(full) != 0 {
				t.Errorf("a %d was logged as a server failure: %q", tt.want, full)
			}
			if tt.logged && tt.hidden != "" && !strings.Contains(full[0], tt.hidden) {
				t.Errorf("the log line lacks the cause %q: %s", tt.hidden, full[0])
			}
			if lines := logs.lines("msg=request", "request_id="+reqID, fmt.Sprintf("status=%d", tt.want)); len(lines) != 1 {
				t.Errorf("want one request log line with status %d, got %q", tt.want, lines)
			}
		})
	}
}
