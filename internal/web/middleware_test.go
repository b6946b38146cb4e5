package web_test

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/kiln-dev/kiln/internal/web"
)

// bare is a handler with no service and no dependencies, for behaviour that
// happens before any use case runs (routing, auth, request ids, errors).
func bare(tb testing.TB) (*echo.Echo, *syncBuffer) {
	tb.Helper()
	logs := &syncBuffer{}
	e := web.New(web.Options{
		AddonID:   testAddonID,
		Passwords: []string{password1, password2},
		Log:       slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	return e, logs
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	e, _ := bare(t)
	long := strings.Repeat("a", 201)

	tests := []struct {
		name   string
		path   string
		header map[string]string
		want   string // "" means a fresh uuid
	}{
		{name: "X-Request-Id echoed", header: map[string]string{"X-Request-Id": "abc-123_x.y"}, want: "abc-123_x.y"},
		{name: "Request-Id echoed", header: map[string]string{"Request-Id": "01234567-89ab-cdef-0123-456789abcdef"}, want: "01234567-89ab-cdef-0123-456789abcdef"},
		{name: "Request-Id preferred", header: map[string]string{"Request-Id": "mine", "X-Request-Id": "router"}, want: "mine"},
		{name: "insane Request-Id falls back to X-Request-Id", header: map[string]string{"Request-Id": "a b", "X-Request-Id": "router"}, want: "router"},
		{name: "none generated"},
		{name: "too long replaced", header: map[string]string{"X-Request-Id": long}},
		{name: "spaces replaced", header: map[string]string{"X-Request-Id": "a b"}},
		{name: "log injection replaced", header: map[string]string{"X-Request-Id": `x" status=200`}},
		{name: "on a 404", path: "/nowhere", header: map[string]string{"X-Request-Id": "lost-1"}, want: "lost-1"},
		{name: "on a 401", path: "/heroku/resources", header: map[string]string{"X-Request-Id": "denied-1"}, want: "denied-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if path == "" {
				path = "/healthz"
			}
			method := http.MethodGet
			if path == "/heroku/resources" {
				method = http.MethodPost
			}
			a := serve(t, e, request{method: method, path: path, header: tt.header})
			got := a.header.Get("Request-Id")
			if tt.want != "" {
				if got != tt.want {
					t.Errorf("Request-Id %q, want %q", got, tt.want)
				}
				return
			}
			if _, err := uuid.Parse(got); err != nil {
				t.Errorf("Request-Id %q is not a fresh uuid", got)
			}
			if again := serve(t, e, request{method: method, path: path, header: tt.header}); again.header.Get("Request-Id") == got {
				t.Errorf("two requests got the same generated id %q", got)
			}
		})
	}
}

// TestRequestLog checks the request log line and that no secret (the Basic
// password, the grant code, the log drain token) reaches the log.
func TestRequestLog(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envConfig{})

	tests := []struct {
		name     string
		body     string
		reqID    string
		wantLine []string
	}{
		{
			name:     "accepted",
			body:     provisionBody(uuid.NewString()),
			reqID:    "log-accepted",
			wantLine: []string{"msg=request", "request_id=log-accepted", "method=POST", "path=/heroku/resources", "status=202", "duration="},
		},
		{
			name:     "refused",
			body:     `{"uuid":"bad","plan":"test","log_drain_token":"d.secret-drain-token"}`,
			reqID:    "log-refused",
			wantLine: []string{"msg=request", "request_id=log-refused", "status=422", "error=invalid", "duration="},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := heroku(http.MethodPost, "/heroku/resources", tt.body)
			r.header["X-Request-Id"] = tt.reqID
			serve(t, env.e, r)
			if lines := env.logs.lines(tt.wantLine...); len(lines) != 1 {
				t.Errorf("want one log line with %q, got %q\nlog:\n%s", tt.wantLine, lines, env.logs)
			}
			if lines := env.logs.lines("request failed", tt.reqID); len(lines) != 0 {
				t.Errorf("a 4xx or 2xx was logged as a failure: %q", lines)
			}
		})
	}
	log := env.logs.String()
	for _, secret := range []string{password1, "Authorization", "Basic ", "grant-code-", "secret-drain-token", "secret-log-input"} {
		if strings.Contains(log, secret) {
			t.Errorf("the log contains %q:\n%s", secret, log)
		}
	}
}
