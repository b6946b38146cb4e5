package herokusim_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/herokusim"
)

const (
	secret = "s3cret"
	accept = "application/vnd.heroku+json; version=3"
	idA    = "01234567-89ab-cdef-0123-456789abcdef"
	idB    = "11111111-2222-4333-8444-555555555555"
)

// clock is a settable time source, so expiry and refill need no sleeping.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 3, 18, 0, 0, 0, time.UTC)} }

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
	sim   *herokusim.Sim
	srv   *httptest.Server
	clock *clock
}

func start(tb testing.TB, o herokusim.Options) *env {
	tb.Helper()
	c := newClock()
	if o.Now == nil {
		o.Now = c.Now
	}
	if o.ClientSecret == "" {
		o.ClientSecret = secret
	}
	sim, srv := herokusim.NewServer(tb, o)
	return &env{sim: sim, srv: srv, clock: c}
}

// answer is a decoded response.
type answer struct {
	status int
	header http.Header
	body   map[string]any
	list   []any
}

func (a answer) str(k string) string { s, _ := a.body[k].(string); return s }

func do(tb testing.TB, req *http.Request) answer {
	tb.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		tb.Fatal(err)
	}
	a := answer{status: res.StatusCode, header: res.Header}
	if len(raw) > 0 && raw[0] == '[' {
		if err := json.Unmarshal(raw, &a.list); err != nil {
			tb.Fatalf("decode %s: %v", raw, err)
		}
	} else if len(raw) > 0 {
		if err := json.Unmarshal(raw, &a.body); err != nil {
			tb.Fatalf("decode %s: %v", raw, err)
		}
	}
	return a
}

func (e *env) token(tb testing.TB, form url.Values) answer {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(tb, req)
}

func grantForm(code string) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_secret": {secret}}
}

func refreshForm(rt string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_secret": {secret}}
}

// tokens registers an add-on and exchanges its grant.
func (e *env) tokens(tb testing.TB, id string) (access, refresh string) {
	tb.Helper()
	g := e.sim.NewAddon(id)
	a := e.token(tb, grantForm(g.Code))
	if a.status != http.StatusOK {
		tb.Fatalf("exchange: %d %v", a.status, a.body)
	}
	return a.str("access_token"), a.str("refresh_token")
}

type call struct {
	method, path, token, body string
	accept                    *string // nil: the right one
	auth                      string  // overrides "Bearer <token>"
}

func (e *env) api(tb testing.TB, c call) answer {
	tb.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, e.srv.URL+c.path, body)
	if err != nil {
		tb.Fatal(err)
	}
	if c.accept == nil {
		req.Header.Set("Accept", accept)
	} else if *c.accept != "" {
		req.Header.Set("Accept", *c.accept)
	}
	switch {
	case c.auth != "":
		req.Header.Set("Authorization", c.auth)
	case c.token != "":
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return do(tb, req)
}

func ptr(s string) *string { return &s }

func wantError(tb testing.TB, a answer, status int, id string) {
	tb.Helper()
	if a.status != status || a.str("id") != id {
		tb.Fatalf("got %d %v, want %d id=%s", a.status, a.body, status, id)
	}
}

func TestGrantExchange(t *testing.T) {
	tests := []struct {
		name    string
		form    func(code string) url.Values
		before  func(e *env, code string)
		status  int
		errID   string
		message string
	}{
		{name: "ok", form: grantForm, status: 200},
		{name: "grant type defaults to authorization_code", form: func(c string) url.Values {
			f := grantForm(c)
			f.Del("grant_type")
			return f
		}, status: 200},
		{name: "secret in basic auth", form: func(c string) url.Values {
			f := grantForm(c)
			f.Del("client_secret")
			return f
		}, status: 200},
		{name: "wrong secret", form: func(c string) url.Values {
			f := grantForm(c)
			f.Set("client_secret", "nope")
			return f
		}, status: 401, errID: "unauthorized"},
		{name: "missing secret", form: func(c string) url.Values {
			f := grantForm(c)
			f.Del("client_secret")
			return f
		}, status: 401, errID: "unauthorized"},
		{name: "unknown code", form: func(string) url.Values { return grantForm("no-such-code") },
			status: 401, errID: "unauthorized", message: "OAuth authorization invalid."},
		{name: "code already used", form: grantForm, before: func(e *env, code string) {
			if a := e.token(t, grantForm(code)); a.status != 200 {
				t.Fatalf("first exchange: %d", a.status)
			}
		}, status: 401, errID: "unauthorized", message: "OAuth authorization invalid."},
		{name: "code expired", form: grantForm, before: func(e *env, _ string) { e.clock.Add(5 * time.Minute) },
			status: 401, errID: "unauthorized", message: "OAuth authorization invalid."},
		{name: "code about to expire", form: grantForm, before: func(e *env, _ string) { e.clock.Add(5*time.Minute - time.Second) },
			status: 200},
		{name: "unsupported grant type", form: func(c string) url.Values {
			f := grantForm(c)
			f.Set("grant_type", "password")
			return f
		}, status: 422, errID: "invalid_params"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, herokusim.Options{})
			g := e.sim.NewAddon(idA)
			if want := e.clock.Now().Add(5 * time.Minute); !g.ExpiresAt.Equal(want) {
				t.Fatalf("grant expires %v, want %v", g.ExpiresAt, want)
			}
			if tt.before != nil {
				tt.before(e, g.Code)
			}
			form := tt.form(g.Code)
			req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/oauth/token", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.name == "secret in basic auth" {
				req.SetBasicAuth("client-id", secret)
			}
			a := do(t, req)
			if a.header.Get("Request-Id") == "" {
				t.Error("no Request-Id")
			}
			if tt.status != 200 {
				wantError(t, a, tt.status, tt.errID)
				if tt.message != "" && a.str("message") != tt.message {
					t.Errorf("message %q, want %q", a.str("message"), tt.message)
				}
				return
			}
			if a.status != 200 {
				t.Fatalf("status %d %v", a.status, a.body)
			}
			if !strings.HasPrefix(a.str("access_token"), "HRKU-") || a.str("refresh_token") == "" ||
				a.str("token_type") != "Bearer" || a.str("user_id") == "" || a.str("session_nonce") == "" {
				t.Errorf("answer %v", a.body)
			}
			if got := a.body["expires_in"]; got != float64(28799) {
				t.Errorf("expires_in %v, want 28799", got)
			}
			calls := e.sim.Calls()
			last := calls[len(calls)-1]
			if last.Kind != herokusim.KindGrant || last.AddonID != idA || last.Status != 200 || last.RequestID != a.header.Get("Request-Id") {
				t.Errorf("call %+v", last)
			}
		})
	}
}

func TestWrongSecretLeavesCodeUsable(t *testing.T) {
	e := start(t, herokusim.Options{})
	g := e.sim.NewAddon(idA)
	f := grantForm(g.Code)
	f.Set("client_secret", "wrong")
	wantError(t, e.token(t, f), 401, "unauthorized")
	if a := e.token(t, grantForm(g.Code)); a.status != 200 {
		t.Fatalf("exchange after refused secret: %d %v", a.status, a.body)
	}
}

func TestConcurrentExchangeSpendsCodeOnce(t *testing.T) {
	e := start(t, herokusim.Options{})
	g := e.sim.NewAddon(idA)
	const n = 20
	var wg sync.WaitGroup
	statuses := make(chan int, n)
	for range n {
		wg.Go(func() { statuses <- e.token(t, grantForm(g.Code)).status })
	}
	wg.Wait()
	close(statuses)
	won := 0
	for st := range statuses {
		if st == 200 {
			won++
		} else if st != 401 {
			t.Errorf("status %d", st)
		}
	}
	if won != 1 {
		t.Fatalf("%d exchanges succeeded, want 1", won)
	}
}

func TestRefresh(t *testing.T) {
	tests := []struct {
		name   string
		form   func(rt string) url.Values
		status int
	}{
		{name: "ok", form: refreshForm, status: 200},
		{name: "unknown refresh token", form: func(string) url.Values { return refreshForm("nope") }, status: 401},
		{name: "wrong secret", form: func(rt string) url.Values {
			f := refreshForm(rt)
			f.Set("client_secret", "nope")
			return f
		}, status: 401},
		{name: "parameters in the query string", form: nil, status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, herokusim.Options{})
			old, rt := e.tokens(t, idA)
			var a answer
			if tt.form == nil {
				req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/oauth/token?"+refreshForm(rt).Encode(), nil)
				a = do(t, req)
			} else {
				a = e.token(t, tt.form(rt))
			}
			if tt.status != 200 {
				wantError(t, a, tt.status, "unauthorized")
				// The old token still works after a refused refresh.
				if g := e.api(t, call{method: "GET", path: "/addons/" + idA, token: old}); g.status != 200 {
					t.Errorf("old token after refused refresh: %d", g.status)
				}
				return
			}
			if a.status != 200 {
				t.Fatalf("refresh: %d %v", a.status, a.body)
			}
			fresh := a.str("access_token")
			if fresh == "" || fresh == old || a.str("refresh_token") != rt || a.body["expires_in"] != float64(28799) {
				t.Fatalf("answer %v", a.body)
			}
			wantError(t, e.api(t, call{method: "GET", path: "/addons/" + idA, token: old}), 401, "unauthorized")
			if g := e.api(t, call{method: "GET", path: "/addons/" + idA, token: fresh}); g.status != 200 {
				t.Fatalf("new token: %d %v", g.status, g.body)
			}
			calls := e.sim.Calls()
			if c := calls[1]; c.Kind != herokusim.KindRefresh || c.AddonID != idA || c.Status != 200 {
				t.Errorf("refresh call %+v", c)
			}
		})
	}
}

func TestTokenEndpointOnlyPost(t *testing.T) {
	e := start(t, herokusim.Options{})
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/oauth/token", nil)
	wantError(t, do(t, req), 404, "not_found")
}

func TestPlatformAPIChecks(t *testing.T) {
	tests := []struct {
		name   string
		call   func(e *env, tokA, tokB string) call
		status int
		errID  string
		check  func(t *testing.T, a answer)
	}{
		{name: "no Accept", call: func(e *env, a, b string) call {
			return call{method: "GET", path: "/addons/" + idA, token: a, accept: ptr("")}
		}, status: 400, errID: "missing_version", check: func(t *testing.T, a answer) {
			if !strings.Contains(a.str("error"), "version=3") {
				t.Errorf("missing_version carries its text under error: %v", a.body)
			}
		}},
		{name: "plain JSON Accept", call: func(e *env, a, b string) call {
			return call{method: "GET", path: "/addons/" + idA, token: a, accept: ptr("application/json")}
		}, status: 400, errID: "missing_version"},
		{name: "media type without version", call: func(e *env, a, b string) call {
			return call{method: "GET", path: "/addons/" + idA, token: a, accept: ptr("application/vnd.heroku+json")}
		}, status: 400, errID: "missing_version"},
		{name: "version 2", call: func(e *env, a, b string) call {
			return call{method: "GET", path: "/addons/" + idA, token: a, accept: ptr("application/vnd.heroku+json; version=2")}
		}, status: 406, errID: "not_acceptable"},
		{name: "version 3 variant", call: func(e *env, a, b string) call {
			return call{method: "GET", path: "/addons/" + idA, token: a, accept: ptr("text/html, application/vnd.heroku+json; version=3.sdk")}
		}, status: 200},
		{name: "no credentials", call: func(e *env, a, b string) call {
			return call{method: "GET", path: "/addons/" + idA}
		}, status: 401, errID: "unauthorized", check: func(t *testing.T, a answer) {
			if !strings.Contains(a.str("message"), "no credentials") {
				t.Errorf("message %q", a.str("message"))
			}
		}},
		{name: "basic credentials", call: func(e *env, a, b string) call {
			return call{method: "GET", path: "/addons/" + idA, auth: "Basic dXNlcjpwYXNz"}
		}, status: 401, errID: "unauthorized"},
		{name: "unknown token", call: func(e *env, a, b string) call {
			return call{method: "GET", path: "/addons/" + idA, token: "HRKU-nope"}
		}, status: 401, errID: "unauthorized", check: func(t *testing.T, a answer) {
			if a.str("message") != "Invalid credentials provided." {
				t.Errorf("message %q", a.str("message"))
			}
		}},
		{name: "token expired by time", call: func(e *env, a, b string) call {
			e.clock.Add(8 * time.Hour)
			return call{method: "GET", path: "/addons/" + idA, token: a}
		}, status: 401, errID: "unauthorized"},
		{name: "token still valid just before expiry", call: func(e *env, a, b string) call {
			e.clock.Add(8*time.Hour - time.Second)
			return call{method: "GET", path: "/addons/" + idA, token: a}
		}, status: 200},
		{name: "token expired by ExpireTokens", call: func(e *env, a, b string) call {
			if !e.sim.ExpireTokens(idA) {
				t.Fatal("ExpireTokens found no token")
			}
			return call{method: "GET", path: "/addons/" + idA, token: a}
		}, status: 401, errID: "unauthorized"},
		{name: "token of another add-on", call: func(e *env, a, b string) call {
			return call{method: "POST", path: "/addons/" + idA + "/actions/provision", token: b}
		}, status: 403, errID: "forbidden"},
		{name: "unknown add-on", call: func(e *env, a, b string) call {
			return call{method: "GET", path: "/addons/99999999-9999-4999-8999-999999999999", token: a}
		}, status: 404, errID: "not_found", check: func(t *testing.T, a answer) {
			if a.str("resource") != "addon" {
				t.Errorf("resource %q", a.str("resource"))
			}
		}},
		{name: "unknown endpoint", call: func(e *env, a, b string) call {
			return call{method: "DELETE", path: "/addons/" + idA, token: a}
		}, status: 404, errID: "not_found"},
		{name: "by name", call: func(e *env, a, b string) call {
			st, _ := e.sim.Addon(idA)
			return call{method: "GET", path: "/addons/" + st.Name, token: a}
		}, status: 200, check: func(t *testing.T, a answer) {
			if a.str("id") != idA {
				t.Errorf("id %q", a.str("id"))
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, herokusim.Options{})
			tokA, _ := e.tokens(t, idA)
			tokB, _ := e.tokens(t, idB)
			a := e.api(t, tt.call(e, tokA, tokB))
			if tt.status == 200 {
				if a.status != 200 {
					t.Fatalf("status %d %v", a.status, a.body)
				}
			} else {
				wantError(t, a, tt.status, tt.errID)
			}
			if a.header.Get("Request-Id") == "" || a.header.Get("RateLimit-Remaining") == "" {
				t.Errorf("headers %v", a.header)
			}
			if tt.check != nil {
				tt.check(t, a)
			}
		})
	}
}

func TestRefreshAfterExpiry(t *testing.T) {
	e := start(t, herokusim.Options{})
	tok, rt := e.tokens(t, idA)
	e.sim.ExpireTokens(idA)
	wantError(t, e.api(t, call{method: "GET", path: "/addons/" + idA, token: tok}), 401, "unauthorized")
	a := e.token(t, refreshForm(rt))
	if a.status != 200 {
		t.Fatalf("refresh: %d", a.status)
	}
	if g := e.api(t, call{method: "GET", path: "/addons/" + idA, token: a.str("access_token")}); g.status != 200 {
		t.Fatalf("after refresh: %d %v", g.status, g.body)
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		status int
		errID  string
		want   map[string]string
	}{
		{name: "set", body: `{"config":[{"name":"KILN_URL","value":"postgres://x"},{"name":"KILN_KEY","value":"k"}]}`,
			status: 200, want: map[string]string{"KILN_URL": "postgres://x", "KILN_KEY": "k", "KILN_OLD": "o"}},
		{name: "null unsets", body: `{"config":[{"name":"KILN_OLD","value":null}]}`,
			status: 200, want: map[string]string{}},
		{name: "absent value unsets", body: `{"config":[{"name":"KILN_OLD"}]}`,
			status: 200, want: map[string]string{}},
		{name: "unknown fields tolerated", body: `{"config":[{"name":"KILN_URL","value":"u","extra":1}],"x":true}`,
			status: 200, want: map[string]string{"KILN_URL": "u", "KILN_OLD": "o"}},
		{name: "bad name", body: `{"config":[{"name":"kiln_url","value":"u"}]}`, status: 422, errID: "invalid_params"},
		{name: "non-string value", body: `{"config":[{"name":"KILN_URL","value":3}]}`, status: 422, errID: "invalid_params"},
		{name: "no config", body: `{}`, status: 422, errID: "invalid_params"},
		{name: "not JSON", body: `config=1`, status: 400, errID: "bad_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, herokusim.Options{})
			tok, _ := e.tokens(t, idA)
			seed := e.api(t, call{method: "PATCH", path: "/addons/" + idA + "/config", token: tok, body: `{"config":[{"name":"KILN_OLD","value":"o"}]}`})
			if seed.status != 200 {
				t.Fatalf("seed: %d %v", seed.status, seed.body)
			}
			a := e.api(t, call{method: "PATCH", path: "/addons/" + idA + "/config", token: tok, body: tt.body})
			st, _ := e.sim.Addon(idA)
			if tt.status != 200 {
				wantError(t, a, tt.status, tt.errID)
				if len(st.Config) != 1 || st.Config["KILN_OLD"] != "o" {
					t.Errorf("a refused update changed config: %v", st.Config)
				}
				return
			}
			if a.status != 200 {
				t.Fatalf("status %d %v", a.status, a.body)
			}
			if len(a.list) != len(tt.want) {
				t.Errorf("answer %v, want the add-on's %d vars", a.list, len(tt.want))
			}
			for _, item := range a.list {
				m := item.(map[string]any)
				if tt.want[m["name"].(string)] != m["value"] {
					t.Errorf("answer item %v", m)
				}
			}
			if len(st.Config) != len(tt.want) {
				t.Fatalf("config %v, want %v", st.Config, tt.want)
			}
			for k, v := range tt.want {
				if st.Config[k] != v {
					t.Errorf("config %s=%q, want %q", k, st.Config[k], v)
				}
			}
		})
	}
}

func TestLifecycle(t *testing.T) {
	e := start(t, herokusim.Options{})
	tok, _ := e.tokens(t, idA)
	path := "/addons/" + idA
	steps := []struct {
		name   string
		call   call
		status int
		state  string
	}{
		{"get while provisioning", call{method: "GET", path: path}, 200, "provisioning"},
		{"config", call{method: "PATCH", path: path + "/config", body: `{"config":[{"name":"KILN_URL","value":"u"}]}`}, 200, "provisioning"},
		{"provision", call{method: "POST", path: path + "/actions/provision"}, 200, "provisioned"},
		{"provision again is a no-op", call{method: "POST", path: path + "/actions/provision"}, 200, "provisioned"},
		{"config after provisioning", call{method: "PATCH", path: path + "/config", body: `{"config":[{"name":"KILN_URL","value":"v"}]}`}, 200, "provisioned"},
		{"deprovision", call{method: "POST", path: path + "/actions/deprovision"}, 200, "deprovisioned"},
		{"deprovision again is a no-op", call{method: "POST", path: path + "/actions/deprovision"}, 200, "deprovisioned"},
		{"provision after deprovision", call{method: "POST", path: path + "/actions/provision"}, 422, "deprovisioned"},
		{"config after deprovision", call{method: "PATCH", path: path + "/config", body: `{"config":[]}`}, 422, "deprovisioned"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.call.token = tok
			a := e.api(t, s.call)
			if a.status != s.status {
				t.Fatalf("status %d, want %d: %v", a.status, s.status, a.body)
			}
			if st, _ := e.sim.Addon(idA); st.State != s.state {
				t.Errorf("state %s, want %s", st.State, s.state)
			}
			if s.status == 200 && s.call.method != "PATCH" && (a.str("state") != s.state || a.str("id") != idA) {
				t.Errorf("answer %v", a.body)
			}
		})
	}
	st, _ := e.sim.Addon(idA)
	if st.Config["KILN_URL"] != "v" {
		t.Errorf("config %v", st.Config)
	}
	var kinds []string
	for _, c := range e.sim.Calls() {
		kinds = append(kinds, c.Kind+":"+strconv.Itoa(c.Status))
	}
	want := "grant:200 get:200 config:200 provision:200 provision:200 config:200 deprovision:200 deprovision:200 provision:422 config:422"
	if got := strings.Join(kinds, " "); got != want {
		t.Errorf("calls\n got %s\nwant %s", got, want)
	}
}

func TestGetShowsConfigVarNames(t *testing.T) {
	e := start(t, herokusim.Options{})
	tok, _ := e.tokens(t, idA)
	e.api(t, call{method: "PATCH", path: "/addons/" + idA + "/config", token: tok, body: `{"config":[{"name":"KILN_URL","value":"secret-url"}]}`})
	a := e.api(t, call{method: "GET", path: "/addons/" + idA, token: tok})
	vars, _ := a.body["config_vars"].([]any)
	if len(vars) != 1 || vars[0] != "KILN_URL" {
		t.Errorf("config_vars %v", a.body["config_vars"])
	}
	if a.str("state") != "provisioning" || a.body["app"] == nil || a.body["plan"] == nil {
		t.Errorf("add-on %v", a.body)
	}
}

func TestRateLimit(t *testing.T) {
	e := start(t, herokusim.Options{RateLimit: 3, RateRefill: 60})
	tokA, _ := e.tokens(t, idA)
	tokB, _ := e.tokens(t, idB)
	get := func(tok, id string) answer {
		return e.api(t, call{method: "GET", path: "/addons/" + id, token: tok})
	}
	for i, want := range []string{"2", "1", "0"} {
		a := get(tokA, idA)
		if a.status != 200 || a.header.Get("RateLimit-Remaining") != want {
			t.Fatalf("call %d: %d remaining %s, want 200 remaining %s", i, a.status, a.header.Get("RateLimit-Remaining"), want)
		}
	}
	a := get(tokA, idA)
	wantError(t, a, 429, "rate_limit")
	if a.header.Get("Retry-After") != "1" || a.header.Get("RateLimit-Remaining") != "0" {
		t.Errorf("429 headers %v", a.header)
	}
	if b := get(tokB, idB); b.status != 200 {
		t.Errorf("another user's bucket: %d", b.status)
	}
	e.clock.Add(time.Second)
	if a := get(tokA, idA); a.status != 200 {
		t.Errorf("after refill: %d", a.status)
	}
	e.clock.Add(time.Hour)
	if a := get(tokA, idA); a.header.Get("RateLimit-Remaining") != "2" {
		t.Errorf("bucket overfilled: remaining %s", a.header.Get("RateLimit-Remaining"))
	}
}

func TestRateLimitDefaultsAndOff(t *testing.T) {
	t.Run("default bucket", func(t *testing.T) {
		e := start(t, herokusim.Options{})
		tok, _ := e.tokens(t, idA)
		a := e.api(t, call{method: "GET", path: "/addons/" + idA, token: tok})
		if a.header.Get("RateLimit-Remaining") != "4499" {
			t.Errorf("remaining %s, want 4499", a.header.Get("RateLimit-Remaining"))
		}
	})
	t.Run("off", func(t *testing.T) {
		e := start(t, herokusim.Options{RateLimit: 1, NoRateLimit: true})
		tok, _ := e.tokens(t, idA)
		for range 5 {
			if a := e.api(t, call{method: "GET", path: "/addons/" + idA, token: tok}); a.status != 200 {
				t.Fatalf("status %d", a.status)
			}
		}
	})
}

func TestStatusFaults(t *testing.T) {
	tests := []struct {
		name  string
		fault herokusim.Fault
		// calls made in order: kind of each, addon of each
		calls []string
		want  []int
	}{
		{name: "503 twice then normal", fault: herokusim.Fault{Kind: "provision", Status: 503, RetryAfter: "7", Times: 2},
			calls: []string{"provision:A", "provision:A", "provision:A"}, want: []int{503, 503, 200}},
		{name: "only the named add-on", fault: herokusim.Fault{Kind: "get", AddonID: idB, Status: 500, Times: 1},
			calls: []string{"get:A", "get:B", "get:B"}, want: []int{200, 500, 200}},
		{name: "any kind until cleared", fault: herokusim.Fault{Status: 429, RetryAfter: "30"},
			calls: []string{"get:A", "config:A", "refresh:A", "provision:B"}, want: []int{429, 429, 429, 429}},
		{name: "grant fault leaves the code unspent", fault: herokusim.Fault{Kind: "grant", Status: 503, Times: 1},
			calls: []string{"grant:C", "grant:C"}, want: []int{503, 200}},
		{name: "410", fault: herokusim.Fault{Kind: "config", Status: 410, Message: "Add-on is gone.", Times: 1},
			calls: []string{"config:A"}, want: []int{410}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, herokusim.Options{})
			tokA, rtA := e.tokens(t, idA)
			tokB, _ := e.tokens(t, idB)
			grantC := e.sim.NewAddon("c0000000-0000-4000-8000-000000000000")
			e.sim.Inject(tt.fault)
			skip := len(e.sim.Calls())
			for i, c := range tt.calls {
				kind, who, _ := strings.Cut(c, ":")
				id, tok := idA, tokA
				if who == "B" {
					id, tok = idB, tokB
				}
				var a answer
				switch kind {
				case "get":
					a = e.api(t, call{method: "GET", path: "/addons/" + id, token: tok})
				case "config":
					a = e.api(t, call{method: "PATCH", path: "/addons/" + id + "/config", token: tok, body: `{"config":[]}`})
				case "provision":
					a = e.api(t, call{method: "POST", path: "/addons/" + id + "/actions/provision", token: tok})
				case "refresh":
					a = e.token(t, refreshForm(rtA))
				case "grant":
					a = e.token(t, grantForm(grantC.Code))
				}
				if a.status != tt.want[i] {
					t.Fatalf("call %d (%s): status %d, want %d: %v", i, c, a.status, tt.want[i], a.body)
				}
				if a.status >= 400 {
					if tt.fault.RetryAfter != "" && a.header.Get("Retry-After") != tt.fault.RetryAfter {
						t.Errorf("Retry-After %q", a.header.Get("Retry-After"))
					}
					if a.status == 429 && (a.str("id") != "rate_limit" || a.header.Get("RateLimit-Remaining") != "0") {
						t.Errorf("429 answer %v %v", a.body, a.header)
					}
					if tt.fault.Message != "" && a.str("message") != tt.fault.Message {
						t.Errorf("message %q", a.str("message"))
					}
				}
			}
			calls := e.sim.Calls()[skip:]
			for i, c := range calls {
				if c.Status != tt.want[i] {
					t.Errorf("recorded call %d %+v, want status %d", i, c, tt.want[i])
				}
			}
			e.sim.ClearFaults()
			if a := e.api(t, call{method: "GET", path: "/addons/" + idA, token: tokA}); a.status != 200 {
				t.Errorf("after ClearFaults: %d", a.status)
			}
		})
	}
}

func TestProvisionStateUntouchedByStatusFault(t *testing.T) {
	e := start(t, herokusim.Options{})
	tok, _ := e.tokens(t, idA)
	e.sim.Inject(herokusim.Fault{Kind: "provision", Status: 503})
	e.api(t, call{method: "POST", path: "/addons/" + idA + "/actions/provision", token: tok})
	if st, _ := e.sim.Addon(idA); st.State != "provisioning" {
		t.Fatalf("state %s after a refused provision", st.State)
	}
}

// provisionAsync starts a provision call and returns its status later.
func provisionAsync(ctx context.Context, e *env, tok string) <-chan int {
	done := make(chan int, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.srv.URL+"/addons/"+idA+"/actions/provision", nil)
		req.Header.Set("Accept", accept)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- 0
			return
		}
		res.Body.Close()
		done <- res.StatusCode
	}()
	return done
}

func TestHold(t *testing.T) {
	releases := []struct {
		name    string
		release func(e *env, ch chan struct{})
	}{
		{"channel closed", func(e *env, ch chan struct{}) { close(ch) }},
		{"ClearFaults", func(e *env, ch chan struct{}) { e.sim.ClearFaults() }},
		{"Close", func(e *env, ch chan struct{}) { e.sim.Close() }},
	}
	for _, r := range releases {
		for _, callerDies := range []bool{false, true} {
			t.Run(r.name+"/caller dies="+strconv.FormatBool(callerDies), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				e := start(t, herokusim.Options{})
				tok, _ := e.tokens(t, idA)
				ch := make(chan struct{})
				e.sim.Inject(herokusim.Fault{Kind: "provision", Hold: ch, Times: 1})
				callCtx, kill := context.WithCancel(ctx)
				defer kill()
				done := provisionAsync(callCtx, e, tok)
				if err := e.sim.Wait(ctx, func() bool { return e.sim.Holding("provision") == 1 }); err != nil {
					t.Fatalf("never held: %v", err)
				}
				if st, _ := e.sim.Addon(idA); st.State != "provisioning" {
					t.Fatalf("state %s while held", st.State)
				}
				for _, c := range e.sim.Calls() {
					if c.Kind == "provision" {
						t.Fatalf("held call already recorded: %+v", c)
					}
				}
				if callerDies {
					kill()
					if st := <-done; st != 0 {
						t.Fatalf("killed caller got %d", st)
					}
				}
				r.release(e, ch)
				c, err := e.sim.WaitFor(ctx, idA, "provision")
				if err != nil {
					t.Fatalf("WaitFor: %v", err)
				}
				if c.Status != 200 {
					t.Errorf("call %+v", c)
				}
				if !callerDies {
					if st := <-done; st != 200 {
						t.Errorf("caller got %d", st)
					}
				}
				if st, _ := e.sim.Addon(idA); st.State != "provisioned" {
					t.Errorf("state %s after release", st.State)
				}
				if n := e.sim.Holding(""); n != 0 {
					t.Errorf("still holding %d", n)
				}
			})
		}
	}
}

func TestDelayOutlivesCaller(t *testing.T) {
	e := start(t, herokusim.Options{})
	tok, _ := e.tokens(t, idA)
	e.sim.Inject(herokusim.Fault{Kind: "config", Delay: time.Hour, Times: 1})
	client := &http.Client{Timeout: 50 * time.Millisecond}
	req, _ := http.NewRequest(http.MethodPatch, e.srv.URL+"/addons/"+idA+"/config", strings.NewReader(`{"config":[{"name":"KILN_URL","value":"u"}]}`))
	req.Header.Set("Accept", accept)
	req.Header.Set("Authorization", "Bearer "+tok)
	if res, err := client.Do(req); err == nil {
		res.Body.Close()
		t.Fatalf("a delayed call answered: %d", res.StatusCode)
	}
	e.sim.ClearFaults() // ends the delay
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.sim.WaitFor(ctx, idA, "config"); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.sim.Addon(idA); st.Config["KILN_URL"] != "u" {
		t.Errorf("the delayed update was not applied: %v", st.Config)
	}
}

func TestWaitHonoursContext(t *testing.T) {
	e := start(t, herokusim.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.sim.WaitFor(ctx, idA, "provision"); err == nil {
		t.Fatal("WaitFor returned without the call")
	}
}

func TestOnCallAndMaxCalls(t *testing.T) {
	var mu sync.Mutex
	var seen []herokusim.Call
	e := start(t, herokusim.Options{MaxCalls: 3, OnCall: func(c herokusim.Call) {
		mu.Lock()
		seen = append(seen, c)
		mu.Unlock()
	}})
	tok, _ := e.tokens(t, idA)
	var last answer
	for range 10 {
		last = e.api(t, call{method: "GET", path: "/addons/" + idA, token: tok})
	}
	calls := e.sim.Calls()
	if len(calls) < 3 || len(calls) > 6 {
		t.Errorf("kept %d calls, want between MaxCalls and twice that", len(calls))
	}
	if calls[len(calls)-1].RequestID != last.header.Get("Request-Id") {
		t.Errorf("the newest call was dropped")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 11 {
		t.Errorf("OnCall saw %d calls, want 11", len(seen))
	}
}

func TestRequestIDsUnique(t *testing.T) {
	e := start(t, herokusim.Options{})
	seen := map[string]bool{}
	for range 50 {
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/addons/x", nil)
		id := do(t, req).header.Get("Request-Id")
		if len(id) != 36 || seen[id] {
			t.Fatalf("request id %q (seen: %v)", id, seen[id])
		}
		seen[id] = true
	}
}

func TestConcurrentUse(t *testing.T) {
	e := start(t, herokusim.Options{})
	ids := []string{idA, idB, "c0000000-0000-4000-8000-000000000000", "d0000000-0000-4000-8000-000000000000"}
	var wg sync.WaitGroup
	for _, id := range ids {
		tok, _ := e.tokens(t, id)
		for w := range 4 {
			wg.Go(func() {
				for i := range 25 {
					body := `{"config":[{"name":"KILN_W` + strconv.Itoa(w) + `","value":"` + strconv.Itoa(i) + `"}]}`
					if a := e.api(t, call{method: "PATCH", path: "/addons/" + id + "/config", token: tok, body: body}); a.status != 200 {
						t.Errorf("config: %d", a.status)
						return
					}
					if a := e.api(t, call{method: "GET", path: "/addons/" + id, token: tok}); a.status != 200 {
						t.Errorf("get: %d", a.status)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	for _, id := range ids {
		st, _ := e.sim.Addon(id)
		for w := range 4 {
			if v := st.Config["KILN_W"+strconv.Itoa(w)]; v != "24" {
				t.Errorf("%s KILN_W%d=%q, want 24", id, w, v)
			}
		}
	}
	if n := len(e.sim.Calls()); n != len(ids)*(1+4*25*2) {
		t.Errorf("%d calls recorded", n)
	}
}

// BenchmarkConfig measures the simulator's own cost per Platform API call,
// without the network, as the load benchmarks see it.
func BenchmarkConfig(b *testing.B) {
	sim := herokusim.New(herokusim.Options{ClientSecret: secret, NoRateLimit: true, MaxCalls: 1000})
	g := sim.NewAddon(idA)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/oauth/token", strings.NewReader(grantForm(g.Code).Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	sim.ServeHTTP(rec, req)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &tok); err != nil {
		b.Fatal(err)
	}
	body := `{"config":[{"name":"KILN_URL","value":"postgres://u:p@h/db"}]}`
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPatch, "/addons/"+idA+"/config", strings.NewReader(body))
			req.Header.Set("Accept", accept)
			req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
			rec := httptest.NewRecorder()
			sim.ServeHTTP(rec, req)
			if rec.Code != 200 {
				b.Fatalf("status %d", rec.Code)
			}
		}
	})
}
