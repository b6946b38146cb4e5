package web_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/addon"
)

func TestDashboard(t *testing.T) {
	t.Parallel()
	c := newCustomer(t, customerConfig{})
	a := c.provisioned(t)
	sess := c.session(t, a.ID)
	urlVar := testPrefix + "_URL"
	secretURL := a.Vars["URL"]

	p := do(t, c.e, http.MethodGet, "/dashboard/resources/"+string(a.ID), nil, nil, sess)
	if p.status != http.StatusOK {
		t.Fatalf("dashboard: %d %s", p.status, p.body)
	}
	body := html.UnescapeString(p.body)
	for _, want := range []string{
		a.Name,                                                                    // the add-on's name
		"acme-app",                                                                // the app, from the sign-in form
		"Basic",                                                                   // the plan's name
		"provisioned",                                                             // the state
		urlVar,                                                                    // the config var's name
		"OAuth grant exchanged", "config vars pushed", "signed in through Heroku", // the history
		"Account", "API key last used", "Requests per month", "100,000", // the driver's panel
		"Rotate credentials",
		"dev@example.com",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("dashboard does not show %q", want)
		}
	}
	// The value is in the page (revealing it is a local toggle) but hidden.
	hidden := regexp.MustCompile(`<code class="secret" id="value-0" hidden>([^<]*)</code>`).FindStringSubmatch(p.body)
	if hidden == nil || html.UnescapeString(hidden[1]) != secretURL {
		t.Errorf("the config value is not rendered hidden in the page")
	}
	for _, h := range []struct{ name, want string }{
		{"Cache-Control", "no-store"},
		{"Content-Security-Policy", "default-src 'none'"},
		{"X-Frame-Options", "DENY"},
		{"Content-Type", "text/html"},
	} {
		if got := p.header.Get(h.name); !strings.Contains(got, h.want) {
			t.Errorf("%s = %q, want it to contain %q", h.name, got, h.want)
		}
	}
	for _, ref := range regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(p.body, -1) {
		if u, err := url.Parse(html.UnescapeString(ref[1])); err != nil || u.Host != "" {
			t.Errorf("the page loads %q from another host", ref[1])
		}
		if strings.HasPrefix(ref[1], "/dashboard/assets/") {
			asset := do(t, c.e, http.MethodGet, html.UnescapeString(ref[1]), nil, nil)
			if asset.status != http.StatusOK || asset.body == "" {
				t.Errorf("asset %s: %d", ref[1], asset.status)
			}
		}
	}
	if strings.Contains(p.body, "boomerang") {
		t.Errorf("the page includes Heroku's deprecated Boomerang header")
	}
}

func TestDashboardRefusesWithoutTheRightSession(t *testing.T) {
	t.Parallel()
	c := newCustomer(t, customerConfig{})
	a, b := c.provisioned(t), c.provisioned(t)
	sessA := c.session(t, a.ID)
	other := newCustomer(t, customerConfig{}) // other keys: its sessions are not ours
	foreign := other.session(t, other.provisioned(t).ID)

	tests := []struct {
		name   string
		path   string
		cookie *http.Cookie
		want   int
	}{
		{"no session", "/dashboard/resources/" + string(a.ID), nil, http.StatusUnauthorized},
		{"garbage session", "/dashboard/resources/" + string(a.ID), &http.Cookie{Name: "kiln_session", Value: "not-a-session"}, http.StatusUnauthorized},
		{"session sealed with another key", "/dashboard/resources/" + string(a.ID), &http.Cookie{Name: "kiln_session", Value: foreign.Value}, http.StatusUnauthorized},
		{"altered session", "/dashboard/resources/" + string(a.ID), &http.Cookie{Name: "kiln_session", Value: flip(sessA.Value)}, http.StatusUnauthorized},
		{"A's session on B's dashboard", "/dashboard/resources/" + string(b.ID), sessA, http.StatusForbidden},
		{"A's session on a made-up add-on", "/dashboard/resources/00000000-0000-4000-8000-000000000000", sessA, http.StatusForbidden},
		{"A's session rotating B", "/dashboard/resources/" + string(b.ID) + "/actions/rotate-credentials", sessA, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, form := http.MethodGet, url.Values(nil)
			if strings.HasSuffix(tt.path, "rotate-credentials") {
				method, form = http.MethodPost, url.Values{"confirm": {"yes"}}
			}
			var cookies []*http.Cookie
			if tt.cookie != nil {
				cookies = append(cookies, tt.cookie)
			}
			p := do(t, c.e, method, tt.path, form, nil, cookies...)
			if p.status != tt.want {
				t.Fatalf("status = %d, want %d: %s", p.status, tt.want, p.body)
			}
			for _, leak := range []string{a.Name, b.Name, a.Vars["URL"], b.Vars["URL"], testPrefix + "_URL"} {
				if strings.Contains(html.UnescapeString(p.body), leak) {
					t.Errorf("the refusal shows %q", leak)
				}
			}
			if !strings.Contains(p.header.Get("Content-Type"), "text/html") {
				t.Errorf("the refusal is %q, want an HTML page for the browser", p.header.Get("Content-Type"))
			}
		})
	}
	if len(c.logs.lines("dashboard session refused")) == 0 {
		t.Errorf("a session that cannot be opened was not logged")
	}
	if got := b.Vars["URL"]; c.stored(t, b.ID).Vars["URL"] != got {
		t.Errorf("B's credentials changed")
	}
}

// flip changes one character in the middle of a cookie value.
func flip(v string) string {
	i := len(v) / 2
	r := byte('A')
	if v[i] == 'A' {
		r = 'B'
	}
	return v[:i] + string(r) + v[i+1:]
}

func (c *customer) stored(tb testing.TB, id addon.ID) *addon.Addon {
	tb.Helper()
	a, err := c.store.Get(context.Background(), id)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

func TestRotateCredentials(t *testing.T) {
	t.Parallel()
	c := newCustomer(t, customerConfig{})
	a := c.provisioned(t)
	sess := c.session(t, a.ID)
	page := do(t, c.e, http.MethodGet, "/dashboard/resources/"+string(a.ID), nil, nil, sess)
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page.body)
	if m == nil {
		t.Fatalf("no CSRF token in the dashboard")
	}
	csrf := html.UnescapeString(m[1])
	action := "/dashboard/resources/" + string(a.ID) + "/actions/rotate-credentials"
	before := a.Vars["URL"]

	refused := []struct {
		name   string
		form   url.Values
		header map[string]string
	}{
		{"no CSRF token", url.Values{"confirm": {"yes"}}, nil},
		{"wrong CSRF token", url.Values{"confirm": {"yes"}, "csrf": {"x" + csrf}}, nil},
		{"cross-site origin", url.Values{"confirm": {"yes"}, "csrf": {csrf}}, map[string]string{"Origin": "https://evil.example.com"}},
		{"cross-site fetch", url.Values{"confirm": {"yes"}, "csrf": {csrf}}, map[string]string{"Sec-Fetch-Site": "cross-site"}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			p := do(t, c.e, http.MethodPost, action, tt.form, tt.header, sess)
			if p.status != http.StatusForbidden {
				t.Fatalf("status = %d, want 403", p.status)
			}
			if got := c.stored(t, a.ID).Vars["URL"]; got != before {
				t.Fatalf("credentials changed by a refused request")
			}
		})
	}

	t.Run("unconfirmed", func(t *testing.T) {
		p := do(t, c.e, http.MethodPost, action, url.Values{"csrf": {csrf}}, nil, sess)
		if p.status != http.StatusSeeOther || !strings.HasSuffix(p.header.Get("Location"), "?notice=confirm-required") {
			t.Fatalf("status = %d, Location %q", p.status, p.header.Get("Location"))
		}
		if got := c.stored(t, a.ID).Vars["URL"]; got != before {
			t.Fatalf("credentials changed without confirmation")
		}
	})

	t.Run("confirmed", func(t *testing.T) {
		header := map[string]string{"Origin": "http://example.com", "Sec-Fetch-Site": "same-origin"}
		p := do(t, c.e, http.MethodPost, action, url.Values{"csrf": {csrf}, "confirm": {"yes"}}, header, sess)
		if p.status != http.StatusSeeOther || p.header.Get("Location") != "/dashboard/resources/"+string(a.ID)+"?notice=rotated" {
			t.Fatalf("status = %d, Location %q: %s", p.status, p.header.Get("Location"), p.body)
		}
		after := c.stored(t, a.ID).Vars["URL"]
		if after == before || after == "" {
			t.Fatalf("URL not rotated")
		}
		onHeroku, _ := c.sim.Addon(string(a.ID))
		if onHeroku.Config[testPrefix+"_URL"] != after {
			t.Errorf("Heroku has %s_URL %q, want the new URL", testPrefix, onHeroku.Config[testPrefix+"_URL"])
		}
		oldUser, _ := url.Parse(before)
		pw, _ := oldUser.User.Password()
		if _, err := c.driver.Authenticate(context.Background(), oldUser.User.Username(), pw); addon.ErrorCode(err) != addon.EUNAUTHORIZED {
			t.Errorf("the old key still authenticates: %v", err)
		}
		shown := do(t, c.e, http.MethodGet, p.header.Get("Location"), nil, nil, sess)
		if !strings.Contains(shown.body, "Credentials rotated") || !strings.Contains(html.UnescapeString(shown.body), after) {
			t.Errorf("the dashboard after rotation does not confirm it or show the new URL")
		}
	})
}

// TestRotateRefusedNotices: whether an add-on may rotate is the service's
// rule; the dashboard turns its refusals into notices and changes nothing.
func TestRotateRefusedNotices(t *testing.T) {
	t.Parallel()
	c := newCustomer(t, customerConfig{})
	tests := []struct {
		name   string
		shape  func(a *addon.Addon)
		notice string
	}{
		{"no Platform API access (no OAuth grant)", func(a *addon.Addon) { a.Tokens = nil }, "rotate-refused"},
		{"not provisioned", func(a *addon.Addon) { a.State = addon.StateFailed }, "not-provisioned"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := c.provisioned(t)
			sess := c.session(t, a.ID)
			page := do(t, c.e, http.MethodGet, "/dashboard/resources/"+string(a.ID), nil, nil, sess)
			m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page.body)
			if m == nil {
				t.Fatalf("no CSRF token in the dashboard")
			}
			if _, err := c.store.Update(context.Background(), a.ID, func(_ context.Context, a *addon.Addon) error {
				tt.shape(a)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			form := url.Values{"csrf": {html.UnescapeString(m[1])}, "confirm": {"yes"}}
			header := map[string]string{"Origin": "http://example.com", "Sec-Fetch-Site": "same-origin"}
			p := do(t, c.e, http.MethodPost, "/dashboard/resources/"+string(a.ID)+"/actions/rotate-credentials", form, header, sess)
			if want := "/dashboard/resources/" + string(a.ID) + "?notice=" + tt.notice; p.status != http.StatusSeeOther || p.header.Get("Location") != want {
				t.Fatalf("status = %d, Location %q; want 303 to %q", p.status, p.header.Get("Location"), want)
			}
			if got := c.stored(t, a.ID).Vars["URL"]; got != a.Vars["URL"] {
				t.Fatalf("credentials changed by a refused rotation")
			}
		})
	}
}

func TestDashboardAssets(t *testing.T) {
	t.Parallel()
	e, _ := bare(t)
	for _, name := range []string{"dashboard.css", "dashboard.js"} {
		p := do(t, e, http.MethodGet, "/dashboard/assets/"+name, nil, nil)
		if p.status != http.StatusOK || p.body == "" {
			t.Fatalf("%s: %d", name, p.status)
		}
		if strings.Contains(p.body, "http://") || strings.Contains(p.body, "https://") || strings.Contains(p.body, "@import") {
			t.Errorf("%s refers to another host", name)
		}
	}
	if p := do(t, e, http.MethodGet, "/dashboard/assets/../templates/dashboard.html", nil, nil); p.status == http.StatusOK && strings.Contains(p.body, "{{") {
		t.Errorf("templates are served as assets")
	}
}
