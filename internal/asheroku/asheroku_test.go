package asheroku

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kiln-dev/kiln/internal/herokusim"
)

func TestTokens(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		// The test vector of Heroku's SSO article: sha1("123:salty:567").
		{"resource_token vector", ResourceToken("123", "salty", 567), "8bcafa70e186a8f9b85a1c93f3b6b0507748ec7a"},
		// sha256("123:salty:567:u1:a@b.c"), computed independently with
		// `printf '123:salty:567:u1:a@b.c' | sha256sum`.
		{"user_scoped_resource_token", UserScopedToken("123", "salty", 567, "u1", "a@b.c"), "368fb56fed8f4b5fed463512cc8e026f799d50766032db0454a40e28dccecea5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %s, want %s", tt.got, tt.want)
			}
		})
	}
}

func TestSSOFormAndPage(t *testing.T) {
	s := NewSSO("01234567-89ab-cdef-0123-456789abcdef", "salty")
	s.Timestamp = time.Unix(1700000000, 0)
	f := s.Form()
	for _, k := range []string{"resource_id", "resource_token", "user_scoped_resource_token", "timestamp", "nav-data", "email", "user_id", "app", "context_app"} {
		if f.Get(k) == "" {
			t.Errorf("form has no %s", k)
		}
	}
	if f.Get("timestamp") != "1700000000" || f.Get("resource_token") != ResourceToken(s.ResourceID, "salty", 1700000000) {
		t.Errorf("form = %v", f)
	}
	page, err := Page("http://localhost:5000/sso/login", f)
	if err != nil {
		t.Fatal(err)
	}
	html := string(page)
	for _, want := range []string{`action="http://localhost:5000/sso/login"`, `method="post"`, `name="resource_token" value="` + f.Get("resource_token") + `"`, "submit()"} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %s:\n%s", want, html)
		}
	}
}

func TestSignInFollowsRedirectAndSeesCookie(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /sso/login", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: NavDataCookie, Value: r.FormValue("nav-data"), Path: "/"})
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "s1", Path: "/"})
		http.Redirect(w, r, "/dashboard/"+r.FormValue("resource_id"), http.StatusSeeOther)
	})
	mux.HandleFunc("GET /dashboard/{id}", func(w http.ResponseWriter, r *http.Request) {
		if c, err := r.Cookie("session"); err != nil || c.Value != "s1" {
			http.Error(w, "no session", http.StatusForbidden)
			return
		}
		_, _ = w.Write([]byte("dashboard"))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	form := NewSSO("abc", "salt").Form()
	got, err := NewKiln(srv.URL, "", "").SignIn(context.Background(), form)
	if err != nil {
		t.Fatal(err)
	}
	if got.First.Status != http.StatusSeeOther || got.Final.Status != http.StatusOK || len(got.Hops) != 1 || !strings.HasSuffix(got.Hops[0], "/dashboard/abc") {
		t.Fatalf("sign-in = first %d, final %d, hops %v", got.First.Status, got.Final.Status, got.Hops)
	}
	if got.NavData == nil || got.NavData.Value != form.Get("nav-data") {
		t.Fatalf("nav-data cookie = %v, want %q", got.NavData, form.Get("nav-data"))
	}
}

func TestKilnSendsHerokuHeaders(t *testing.T) {
	type seen struct{ method, path, accept, user, pass, ctype string }
	calls := make(chan seen, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		calls <- seen{r.Method, r.URL.Path, r.Header.Get("Accept"), u, p, r.Header.Get("Content-Type")}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"x","message":"ok"}`))
	}))
	defer srv.Close()
	k := NewKiln(srv.URL+"/", "kiln", "pw")
	ctx := context.Background()
	tests := []struct {
		name string
		call func() (*Answer, error)
		want seen
	}{
		{"provision", func() (*Answer, error) { return k.Provision(ctx, NewProvisionRequest("id1", "test", nil, nil)) }, seen{"POST", "/heroku/resources", MediaType, "kiln", "pw", "application/json"}},
		{"plan change", func() (*Answer, error) { return k.ChangePlan(ctx, "id1", "basic") }, seen{"PUT", "/heroku/resources/id1", MediaType, "kiln", "pw", "application/json"}},
		{"deprovision", func() (*Answer, error) { return k.Deprovision(ctx, "id1") }, seen{"DELETE", "/heroku/resources/id1", MediaType, "kiln", "pw", ""}},
		{"wrong credentials", func() (*Answer, error) { return k.WithCredentials("kiln", "nope").Deprovision(ctx, "id1") }, seen{"DELETE", "/heroku/resources/id1", MediaType, "kiln", "nope", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := tt.call()
			if err != nil {
				t.Fatal(err)
			}
			if got := <-calls; got != tt.want {
				t.Errorf("request = %+v, want %+v", got, tt.want)
			}
			if !a.IsJSON() || a.Message() != "ok" {
				t.Errorf("answer %s: IsJSON %v, Message %q", a, a.IsJSON(), a.Message())
			}
		})
	}
}

func TestSimClient(t *testing.T) {
	sim, srv := herokusim.NewServer(t, herokusim.Options{})
	ctx := context.Background()
	c := NewSim(srv.URL)
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	id := uuid.NewString()
	reg, err := c.Register(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if reg.ID != id || reg.Grant.Code == "" || reg.Grant.Type != "authorization_code" {
		t.Fatalf("registration = %+v", reg)
	}
	if _, err := time.Parse("2006-01-02T15:04:05-0700", reg.Grant.ExpiresAt); err != nil {
		t.Errorf("grant expires_at %q is not in Heroku's format: %v", reg.Grant.ExpiresAt, err)
	}
	st, err := c.Addon(ctx, id)
	if err != nil || st.State != "provisioning" {
		t.Fatalf("Addon = %+v, %v", st, err)
	}
	if _, err := c.Addon(ctx, uuid.NewString()); !errors.Is(err, ErrUnknownAddon) {
		t.Fatalf("Addon(unknown) error = %v, want ErrUnknownAddon", err)
	}

	// Nobody provisions it yet: WaitProvisioned gives up with ctx.
	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = c.WaitProvisioned(wctx, id, 20*time.Millisecond, nil)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitProvisioned on a provisioning add-on = %v, want the deadline", err)
	}

	// Play the provider: exchange the grant, push config, mark provisioned.
	token := exchange(t, srv.URL, reg.Grant.Code)
	platform(t, srv.URL, token, "PATCH", "/addons/"+id+"/config", `{"config":[{"name":"KILN_URL","value":"https://x"}]}`)
	platform(t, srv.URL, token, "POST", "/addons/"+id+"/actions/provision", "")
	var last Progress
	st, err = c.WaitProvisioned(ctx, id, 20*time.Millisecond, func(p Progress) { last = p })
	if err != nil || st.State != "provisioned" || st.Config["KILN_URL"] != "https://x" {
		t.Fatalf("WaitProvisioned = %+v, %v", st, err)
	}
	for _, kind := range []string{herokusim.KindGrant, herokusim.KindConfig, herokusim.KindProvision} {
		if done, _ := last.Step(kind); !done {
			t.Errorf("progress does not show step %s done: %+v", kind, last.Calls)
		}
	}
	if len(sim.Calls()) != len(last.Calls) {
		t.Errorf("progress shows %d calls, the simulator logged %d", len(last.Calls), len(sim.Calls()))
	}
	ids, err := c.AddonIDs(ctx)
	if err != nil || len(ids) != 1 || ids[0] != id {
		t.Fatalf("AddonIDs = %v, %v", ids, err)
	}
}

func TestPingRefusesOtherServers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"id":"not_found","message":"Not Found"}`))
	}))
	defer srv.Close()
	if err := NewSim(srv.URL).Ping(context.Background()); err == nil {
		t.Fatal("Ping accepted a server that is not the simulator")
	}
}

// exchange trades a grant code for an access token at the simulator, as
// Kiln's worker does.
func exchange(t *testing.T, simURL, code string) string {
	t.Helper()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_secret": {herokusim.DefaultClientSecret}}
	resp, err := http.PostForm(simURL+"/oauth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("grant exchange: %d %v", resp.StatusCode, err)
	}
	return tok.AccessToken
}

// platform makes a Platform API call to the simulator with an access token.
func platform(t *testing.T, simURL, token, method, path, body string) {
	t.Helper()
	req, _ := http.NewRequest(method, simURL+path, strings.NewReader(body))
	req.Header.Set("Accept", "application/vnd.heroku+json; version=3")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d", method, path, resp.StatusCode)
	}
}
