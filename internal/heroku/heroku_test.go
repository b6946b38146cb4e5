package heroku

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/herokusim"
)

const (
	secret = "client-s3cret"
	idA    = "01234567-89ab-cdef-0123-456789abcdef"
	idB    = "11111111-2222-4333-8444-555555555555"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	sim    *herokusim.Sim
	srv    *httptest.Server
	client *Client
	clock  *clock
	logs   *bytes.Buffer
}

// start runs the client against a simulator. The simulator's clock starts
// at the real time so token expiry computed by the client is comparable.
func start(tb testing.TB, o herokusim.Options) *env {
	tb.Helper()
	c := &clock{t: time.Now()}
	if o.Now == nil {
		o.Now = c.Now
	}
	o.ClientSecret = secret
	sim, srv := herokusim.NewServer(tb, o)
	logs := &bytes.Buffer{}
	log := slog.New(slog.NewTextHandler(&syncWriter{w: logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	client := New(Options{APIURL: srv.URL, IDURL: srv.URL, ClientSecret: secret, Log: log})
	return &env{sim: sim, srv: srv, client: client, clock: c, logs: logs}
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (e *env) tokens(tb testing.TB, id string) addon.Tokens {
	tb.Helper()
	tok, err := e.client.ExchangeGrant(context.Background(), e.sim.NewAddon(id).Code)
	if err != nil {
		tb.Fatalf("exchange: %v", err)
	}
	return tok
}

func (e *env) lastCall(tb testing.TB) herokusim.Call {
	tb.Helper()
	calls := e.sim.Calls()
	if len(calls) == 0 {
		tb.Fatal("no calls reached the simulator")
	}
	return calls[len(calls)-1]
}

func str(s string) *string { return &s }

// wantErr checks a domain error: its code, its retry hint, that it names
// Heroku's Request-Id and that it leaks none of the secrets.
func wantErr(tb testing.TB, e *env, err error, code string, retry time.Duration, secrets ...string) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("no error, want %s", code)
	}
	if got := addon.ErrorCode(err); got != code {
		tb.Fatalf("code %s, want %s: %v", got, code, err)
	}
	if got := addon.RetryAfter(err); got != retry {
		tb.Errorf("RetryAfter %v, want %v", got, retry)
	}
	var ae *APIError
	if !errors.As(err, &ae) {
		tb.Fatalf("no *APIError cause in %v", err)
	}
	if rid := e.lastCall(tb).RequestID; ae.RequestID != rid || !strings.Contains(err.Error(), rid) {
		tb.Errorf("error %q does not carry Request-Id %s", err, rid)
	}
	for _, s := range append(secrets, secret) {
		if s != "" && (strings.Contains(err.Error(), s) || strings.Contains(addon.ErrorMessage(err), s)) {
			tb.Errorf("error leaks a secret: %v", err)
		}
	}
}

func TestExchangeGrant(t *testing.T) {
	e := start(t, herokusim.Options{})
	before := time.Now()
	g := e.sim.NewAddon(idA)
	tok, err := e.client.ExchangeGrant(context.Background(), g.Code)
	after := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	if tok.Access == "" || tok.Refresh == "" || tok.UserID == "" {
		t.Fatalf("tokens %+v", tok)
	}
	ttl := 28799 * time.Second
	if tok.ExpiresAt.Before(before.Add(ttl).Truncate(time.Second)) || tok.ExpiresAt.After(after.Add(ttl)) {
		t.Errorf("ExpiresAt %v, want about %v", tok.ExpiresAt, before.Add(ttl))
	}
	if c := e.lastCall(t); c.Kind != herokusim.KindGrant || c.AddonID != idA || c.Status != 200 {
		t.Errorf("call %+v", c)
	}
	// The tokens work on the Platform API.
	if err := e.client.MarkProvisioned(context.Background(), tok.Access, idA); err != nil {
		t.Fatal(err)
	}
}

func TestExchangeGrantRefused(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(e *env, code string) (client *Client, use string)
		code   string
		retry  time.Duration
		inText string
	}{
		{name: "code already used", setup: func(e *env, code string) (*Client, string) {
			if _, err := e.client.ExchangeGrant(context.Background(), code); err != nil {
				t.Fatal(err)
			}
			return e.client, code
		}, code: addon.EINVALID, inText: "Heroku refused the OAuth grant: OAuth authorization invalid."},
		{name: "unknown code", setup: func(e *env, code string) (*Client, string) {
			return e.client, "not-a-code"
		}, code: addon.EINVALID, inText: "Heroku refused the OAuth grant: OAuth authorization invalid."},
		{name: "expired code", setup: func(e *env, code string) (*Client, string) {
			e.clock.Add(6 * time.Minute)
			return e.client, code
		}, code: addon.EINVALID, inText: "Heroku refused the OAuth grant:"},
		{name: "wrong client secret", setup: func(e *env, code string) (*Client, string) {
			return New(Options{APIURL: e.srv.URL, IDURL: e.srv.URL, ClientSecret: "wrong"}), code
		}, code: addon.EINVALID, inText: "Heroku refused the OAuth grant:"},
		{name: "id.heroku.com unavailable", setup: func(e *env, code string) (*Client, string) {
			e.sim.Inject(herokusim.Fault{Kind: "grant", Status: 503, RetryAfter: "5", Times: 1})
			return e.client, code
		}, code: addon.EUNAVAILABLE, retry: 5 * time.Second},
		{name: "id.heroku.com rate limited", setup: func(e *env, code string) (*Client, string) {
			e.sim.Inject(herokusim.Fault{Kind: "grant", Status: 429, Times: 1})
			return e.client, code
		}, code: addon.ERATELIMIT, retry: rateLimitWait},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, herokusim.Options{})
			g := e.sim.NewAddon(idA)
			client, code := tt.setup(e, g.Code)
			_, err := client.ExchangeGrant(context.Background(), code)
			wantErr(t, e, err, tt.code, tt.retry, code)
			if tt.inText != "" && !strings.HasPrefix(addon.ErrorMessage(err), tt.inText) {
				t.Errorf("message %q, want it to start %q", addon.ErrorMessage(err), tt.inText)
			}
			if addon.Transient(err) {
				// A transient failure left the code unspent: a retry works.
				if _, err := e.client.ExchangeGrant(context.Background(), code); err != nil {
					t.Errorf("retry after a transient failure: %v", err)
				}
			}
		})
	}
}

func TestRefreshTokens(t *testing.T) {
	ctx := context.Background()
	e := start(t, herokusim.Options{})
	old := e.tokens(t, idA)
	e.sim.ExpireTokens(idA)
	err := e.client.SetConfig(ctx, old.Access, idA, map[string]*string{"KILN_URL": str("u")})
	wantErr(t, e, err, addon.EUNAUTHORIZED, 0, old.Access)

	fresh, err := e.client.RefreshTokens(ctx, old.Refresh)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Access == "" || fresh.Access == old.Access || fresh.ExpiresAt.Before(time.Now().Add(7*time.Hour)) {
		t.Fatalf("refreshed %+v", fresh)
	}
	if c := e.lastCall(t); c.Kind != herokusim.KindRefresh || c.Status != 200 {
		t.Errorf("call %+v", c)
	}
	if err := e.client.SetConfig(ctx, fresh.Access, idA, map[string]*string{"KILN_URL": str("u")}); err != nil {
		t.Fatalf("with the refreshed token: %v", err)
	}

	_, err = e.client.RefreshTokens(ctx, "not-a-refresh-token")
	wantErr(t, e, err, addon.EINVALID, 0, old.Refresh)
	if !strings.HasPrefix(addon.ErrorMessage(err), "Heroku refused the OAuth refresh token: ") {
		t.Errorf("message %q", addon.ErrorMessage(err))
	}
}

func TestPlatformCalls(t *testing.T) {
	ctx := context.Background()
	e := start(t, herokusim.Options{})
	tok := e.tokens(t, idA)
	steps := []struct {
		name   string
		run    func() error
		kind   string
		state  string
		config map[string]string
	}{
		{"set config", func() error {
			return e.client.SetConfig(ctx, tok.Access, idA, map[string]*string{"KILN_URL": str("postgres://a"), "KILN_OLD": str("x")})
		}, "config", "provisioning", map[string]string{"KILN_URL": "postgres://a", "KILN_OLD": "x"}},
		{"unset with nil", func() error {
			return e.client.SetConfig(ctx, tok.Access, idA, map[string]*string{"KILN_OLD": nil, "KILN_URL": str("postgres://b")})
		}, "config", "provisioning", map[string]string{"KILN_URL": "postgres://b"}},
		{"mark provisioned", func() error { return e.client.MarkProvisioned(ctx, tok.Access, idA) },
			"provision", "provisioned", map[string]string{"KILN_URL": "postgres://b"}},
		{"mark provisioned again", func() error { return e.client.MarkProvisioned(ctx, tok.Access, idA) },
			"provision", "provisioned", map[string]string{"KILN_URL": "postgres://b"}},
		{"mark deprovisioned", func() error { return e.client.MarkDeprovisioned(ctx, tok.Access, idA) },
			"deprovision", "deprovisioned", map[string]string{"KILN_URL": "postgres://b"}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if err := s.run(); err != nil {
				t.Fatal(err)
			}
			if c := e.lastCall(t); c.Kind != s.kind || c.AddonID != idA || c.Status != 200 {
				t.Errorf("call %+v", c)
			}
			st, _ := e.sim.Addon(idA)
			if st.State != s.state || len(st.Config) != len(s.config) {
				t.Fatalf("add-on %+v", st)
			}
			for k, v := range s.config {
				if st.Config[k] != v {
					t.Errorf("%s=%q, want %q", k, st.Config[k], v)
				}
			}
		})
	}
	t.Run("no vars makes no call", func(t *testing.T) {
		n := len(e.sim.Calls())
		if err := e.client.SetConfig(ctx, tok.Access, idA, nil); err != nil {
			t.Fatal(err)
		}
		if len(e.sim.Calls()) != n {
			t.Error("an empty update reached Heroku")
		}
	})
}

func TestPlatformErrors(t *testing.T) {
	httpDate := func(e *env, d time.Duration) string { return time.Now().Add(d).UTC().Format(http.TimeFormat) }
	tests := []struct {
		name string
		opts herokusim.Options
		// arrange returns the call to make
		arrange func(e *env, a, b addon.Tokens) func() error
		code    string
		retry   func(got time.Duration) bool
		message string
	}{
		{name: "401 expired token", arrange: func(e *env, a, b addon.Tokens) func() error {
			e.sim.ExpireTokens(idA)
			return func() error { return e.client.MarkProvisioned(context.Background(), a.Access, idA) }
		}, code: addon.EUNAUTHORIZED},
		{name: "401 unknown token", arrange: func(e *env, a, b addon.Tokens) func() error {
			return func() error { return e.client.MarkProvisioned(context.Background(), "HRKU-nope", idA) }
		}, code: addon.EUNAUTHORIZED},
		{name: "403 another add-on's token", arrange: func(e *env, a, b addon.Tokens) func() error {
			return func() error { return e.client.MarkProvisioned(context.Background(), b.Access, idA) }
		}, code: addon.EINVALID},
		{name: "404 unknown add-on", arrange: func(e *env, a, b addon.Tokens) func() error {
			return func() error {
				return e.client.MarkProvisioned(context.Background(), a.Access, "99999999-9999-4999-8999-999999999999")
			}
		}, code: addon.ENOTFOUND},
		{name: "410 gone", arrange: func(e *env, a, b addon.Tokens) func() error {
			e.sim.Inject(herokusim.Fault{Kind: "config", Status: 410})
			return func() error {
				return e.client.SetConfig(context.Background(), a.Access, idA, map[string]*string{"KILN_URL": str("u")})
			}
		}, code: addon.EGONE},
		{name: "422 refused config", arrange: func(e *env, a, b addon.Tokens) func() error {
			return func() error {
				return e.client.SetConfig(context.Background(), a.Access, idA, map[string]*string{"lower": str("u")})
			}
		}, code: addon.EINVALID, message: `Heroku refused the request: Invalid config var name "lower".`},
		{name: "422 provision after deprovision", arrange: func(e *env, a, b addon.Tokens) func() error {
			if err := e.client.MarkDeprovisioned(context.Background(), a.Access, idA); err != nil {
				t.Fatal(err)
			}
			return func() error { return e.client.MarkProvisioned(context.Background(), a.Access, idA) }
		}, code: addon.EINVALID},
		{name: "429 with Retry-After seconds", arrange: func(e *env, a, b addon.Tokens) func() error {
			e.sim.Inject(herokusim.Fault{Kind: "provision", Status: 429, RetryAfter: "12"})
			return func() error { return e.client.MarkProvisioned(context.Background(), a.Access, idA) }
		}, code: addon.ERATELIMIT, retry: func(d time.Duration) bool { return d == 12*time.Second }},
		{name: "429 without Retry-After", arrange: func(e *env, a, b addon.Tokens) func() error {
			e.sim.Inject(herokusim.Fault{Kind: "provision", Status: 429})
			return func() error { return e.client.MarkProvisioned(context.Background(), a.Access, idA) }
		}, code: addon.ERATELIMIT, retry: func(d time.Duration) bool { return d == rateLimitWait }},
		{name: "429 from an empty bucket", opts: herokusim.Options{RateLimit: 1}, arrange: func(e *env, a, b addon.Tokens) func() error {
			if err := e.client.MarkProvisioned(context.Background(), a.Access, idA); err != nil {
				t.Fatal(err)
			}
			return func() error { return e.client.MarkProvisioned(context.Background(), a.Access, idA) }
		}, code: addon.ERATELIMIT, retry: func(d time.Duration) bool { return d == time.Second }},
		{name: "503 with Retry-After HTTP-date", arrange: func(e *env, a, b addon.Tokens) func() error {
			e.sim.Inject(herokusim.Fault{Kind: "provision", Status: 503, RetryAfter: httpDate(e, 90*time.Second)})
			return func() error { return e.client.MarkProvisioned(context.Background(), a.Access, idA) }
		}, code: addon.EUNAVAILABLE, retry: func(d time.Duration) bool { return d > 85*time.Second && d <= 90*time.Second }},
		{name: "503 with a past HTTP-date", arrange: func(e *env, a, b addon.Tokens) func() error {
			e.sim.Inject(herokusim.Fault{Kind: "provision", Status: 503, RetryAfter: httpDate(e, -time.Hour)})
			return func() error { return e.client.MarkProvisioned(context.Background(), a.Access, idA) }
		}, code: addon.EUNAVAILABLE},
		{name: "500 without Retry-After", arrange: func(e *env, a, b addon.Tokens) func() error {
			e.sim.Inject(herokusim.Fault{Kind: "deprovision", Status: 500})
			return func() error { return e.client.MarkDeprovisioned(context.Background(), a.Access, idA) }
		}, code: addon.EUNAVAILABLE},
		{name: "502 with garbage Retry-After", arrange: func(e *env, a, b addon.Tokens) func() error {
			e.sim.Inject(herokusim.Fault{Kind: "config", Status: 502, RetryAfter: "soon"})
			return func() error {
				return e.client.SetConfig(context.Background(), a.Access, idA, map[string]*string{"KILN_URL": str("u")})
			}
		}, code: addon.EUNAVAILABLE},
		{name: "408", arrange: func(e *env, a, b addon.Tokens) func() error {
			e.sim.Inject(herokusim.Fault{Kind: "provision", Status: 408, RetryAfter: "3"})
			return func() error { return e.client.MarkProvisioned(context.Background(), a.Access, idA) }
		}, code: addon.EUNAVAILABLE, retry: func(d time.Duration) bool { return d == 3*time.Second }},
		{name: "400", arrange: func(e *env, a, b addon.Tokens) func() error {
			e.sim.Inject(herokusim.Fault{Kind: "provision", Status: 400, Message: "Nope."})
			return func() error { return e.client.MarkProvisioned(context.Background(), a.Access, idA) }
		}, code: addon.EINVALID, message: "Heroku refused the request: Nope."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, tt.opts)
			a := e.tokens(t, idA)
			b := e.tokens(t, idB)
			err := tt.arrange(e, a, b)()
			var want time.Duration
			if tt.retry != nil {
				want = addon.RetryAfter(err)
				if !tt.retry(want) {
					t.Errorf("RetryAfter %v out of range", want)
				}
			}
			wantErr(t, e, err, tt.code, want, a.Access, b.Access, a.Refresh)
			if tt.message != "" && addon.ErrorMessage(err) != tt.message {
				t.Errorf("message %q, want %q", addon.ErrorMessage(err), tt.message)
			}
		})
	}
}

func TestMissingVersionMessage(t *testing.T) {
	// The API puts the text of a missing_version answer under "error", not
	// "message"; the client must still report it. A proxy that strips the
	// Accept header provokes that answer from the simulator.
	e := start(t, herokusim.Options{})
	tok := e.tokens(t, idA)
	strip := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del("Accept")
		e.sim.ServeHTTP(w, r)
	}))
	defer strip.Close()
	c := New(Options{APIURL: strip.URL, IDURL: strip.URL, ClientSecret: secret})
	err := c.MarkProvisioned(context.Background(), tok.Access, idA)
	wantErr(t, e, err, addon.EINVALID, 0, tok.Access)
	if !strings.Contains(addon.ErrorMessage(err), "Please specify a version") {
		t.Errorf("message %q", addon.ErrorMessage(err))
	}
}

func TestUnreachable(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, e *env, tok addon.Tokens) error
	}{
		{name: "server down", run: func(t *testing.T, e *env, tok addon.Tokens) error {
			e.srv.Close()
			return e.client.MarkProvisioned(context.Background(), tok.Access, idA)
		}},
		{name: "token endpoint down", run: func(t *testing.T, e *env, tok addon.Tokens) error {
			e.srv.Close()
			_, err := e.client.RefreshTokens(context.Background(), tok.Refresh)
			return err
		}},
		{name: "client timeout", run: func(t *testing.T, e *env, tok addon.Tokens) error {
			e.sim.Inject(herokusim.Fault{Kind: "provision", Delay: time.Hour})
			c := New(Options{APIURL: e.srv.URL, IDURL: e.srv.URL, ClientSecret: secret, HTTPClient: &http.Client{Timeout: 50 * time.Millisecond}})
			return c.MarkProvisioned(context.Background(), tok.Access, idA)
		}},
		{name: "context cancelled", run: func(t *testing.T, e *env, tok addon.Tokens) error {
			e.sim.Inject(herokusim.Fault{Kind: "provision", Delay: time.Hour})
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			err := e.client.MarkProvisioned(ctx, tok.Access, idA)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("the cause is lost: %v", err)
			}
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, herokusim.Options{})
			tok := e.tokens(t, idA)
			err := tt.run(t, e, tok)
			if addon.ErrorCode(err) != addon.EUNAVAILABLE || !addon.Transient(err) {
				t.Fatalf("got %v, want EUNAVAILABLE", err)
			}
			for _, s := range []string{tok.Access, tok.Refresh, secret} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error leaks a secret: %v", err)
				}
			}
		})
	}
}

func TestHeaders(t *testing.T) {
	type seen struct{ method, path, accept, auth, ua, ctype string }
	var mu sync.Mutex
	var got []seen
	sim := herokusim.New(herokusim.Options{ClientSecret: secret})
	// Observe what reaches the simulator; it still answers everything.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, seen{r.Method, r.URL.Path, r.Header.Get("Accept"), r.Header.Get("Authorization"), r.Header.Get("User-Agent"), r.Header.Get("Content-Type")})
		mu.Unlock()
		sim.ServeHTTP(w, r)
	}))
	defer srv.Close()
	defer sim.Close()
	ctx := context.Background()
	c := New(Options{APIURL: srv.URL + "/", IDURL: srv.URL, ClientSecret: secret})
	tok, err := c.ExchangeGrant(ctx, sim.NewAddon(idA).Code)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetConfig(ctx, tok.Access, idA, map[string]*string{"KILN_URL": str("u")}); err != nil {
		t.Fatal(err)
	}
	if err := c.MarkProvisioned(ctx, tok.Access, idA); err != nil {
		t.Fatal(err)
	}
	want := []seen{
		{"POST", "/oauth/token", "application/json", "", "kiln/1", "application/x-www-form-urlencoded"},
		{"PATCH", "/addons/" + idA + "/config", acceptAPI, "Bearer " + tok.Access, "kiln/1", "application/json"},
		{"POST", "/addons/" + idA + "/actions/provision", acceptAPI, "Bearer " + tok.Access, "kiln/1", "application/json"},
	}
	if len(got) != len(want) {
		t.Fatalf("requests %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("request %d\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

func TestLogsHoldNoSecrets(t *testing.T) {
	ctx := context.Background()
	e := start(t, herokusim.Options{RateLimit: 100})
	g := e.sim.NewAddon(idA)
	tok, err := e.client.ExchangeGrant(ctx, g.Code)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.client.SetConfig(ctx, tok.Access, idA, map[string]*string{"KILN_URL": str("postgres://user:pw@h/db")}); err != nil {
		t.Fatal(err)
	}
	fresh, err := e.client.RefreshTokens(ctx, tok.Refresh)
	if err != nil {
		t.Fatal(err)
	}
	out := e.logs.String()
	if !strings.Contains(out, "request_id=") || !strings.Contains(out, "rate limit running low") {
		t.Errorf("logs lack the request id or the low rate-limit warning:\n%s", out)
	}
	for _, s := range []string{g.Code, tok.Access, tok.Refresh, fresh.Access, secret, "pw@h"} {
		if strings.Contains(out, s) {
			t.Errorf("logs leak %q:\n%s", s, out)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 3, 18, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"5", 5 * time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{"99999999999", maxRetryAfter, true},
		{"Tue, 03 Mar 2026 18:00:30 GMT", 30 * time.Second, true}, // IMF-fixdate
		{"Tuesday, 03-Mar-26 18:01:00 GMT", time.Minute, true},    // RFC 850
		{"Tue Mar  3 18:00:10 2026", 10 * time.Second, true},      // asctime
		{"Tue, 03 Mar 2026 17:00:00 GMT", 0, true},                // past
		{"Wed, 04 Mar 2026 18:00:00 GMT", maxRetryAfter, true},    // capped
		{"2026-03-03T18:00:30Z", 0, false},                        // not an HTTP-date
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := parseRetryAfter(tt.in, now)
			if got != tt.want || ok != tt.ok {
				t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c := New(Options{ClientSecret: secret})
	if c.api != DefaultAPIURL || c.id != DefaultIDURL || c.hc.Timeout != defaultTimeout {
		t.Errorf("defaults %q %q %v", c.api, c.id, c.hc.Timeout)
	}
	if err := c.MarkProvisioned(context.Background(), "t", ""); addon.ErrorCode(err) != addon.EINVALID {
		t.Errorf("empty add-on id: %v", err)
	}
}
