package web_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

// TestRotateWithGrace: with a keeper, the dashboard says how long old
// credentials keep working, a rotation keeps the old key valid and says
// until when, and a second rotation inside the grace is refused with a
// notice.
func TestRotateWithGrace(t *testing.T) {
	t.Parallel()
	c := newCustomer(t, customerConfig{grace: time.Hour})
	a := c.provisioned(t)
	sess := c.session(t, a.ID)
	page := do(t, c.e, http.MethodGet, "/dashboard/resources/"+string(a.ID), nil, nil, sess)
	if !strings.Contains(page.body, "The old ones keep working for 1 hour after a rotation") {
		t.Errorf("the dashboard does not say how long old credentials keep working")
	}
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page.body)
	if m == nil {
		t.Fatal("no CSRF token in the dashboard")
	}
	form := url.Values{"csrf": {html.UnescapeString(m[1])}, "confirm": {"yes"}}
	header := map[string]string{"Origin": "http://example.com", "Sec-Fetch-Site": "same-origin"}
	action := "/dashboard/resources/" + string(a.ID) + "/actions/rotate-credentials"
	p := do(t, c.e, http.MethodPost, action, form, header, sess)
	if p.status != http.StatusSeeOther || !strings.HasSuffix(p.header.Get("Location"), "?notice=rotated") {
		t.Fatalf("rotate: %d %q", p.status, p.header.Get("Location"))
	}
	before, _ := url.Parse(a.Vars["URL"])
	pw, _ := before.User.Password()
	if _, err := c.driver.Authenticate(context.Background(), before.User.Username(), pw); err != nil {
		t.Errorf("the old key stopped working inside the grace: %v", err)
	}
	after := c.stored(t, a.ID).Vars["URL"]
	if on, _ := c.sim.Addon(string(a.ID)); after == a.Vars["URL"] || on.Config[testPrefix+"_URL"] != after {
		t.Errorf("the new URL did not reach Heroku at once")
	}
	shown := do(t, c.e, http.MethodGet, p.header.Get("Location"), nil, nil, sess)
	if !strings.Contains(shown.body, `id="old-credentials"`) || !strings.Contains(shown.body, "The previous credentials keep working until") {
		t.Error("the dashboard does not say until when the previous credentials work")
	}
	p = do(t, c.e, http.MethodPost, action, form, header, sess)
	if !strings.HasSuffix(p.header.Get("Location"), "?notice=roll-pending") {
		t.Errorf("a second rotation inside the grace: %d %q, want the roll-pending notice", p.status, p.header.Get("Location"))
	}
	if got := c.stored(t, a.ID).Vars["URL"]; got != after {
		t.Error("the refused second rotation changed the credentials")
	}
}

// TestRetireIsCrashSafe: a roll that crashed after recording the retiring
// credentials but before recording the new ones leaves the current
// credentials retiring; the revocation job must see they are still the
// add-on's own and keep them. A due revocation of real old credentials
// revokes them once, and a repeat is harmless.
func TestRetireIsCrashSafe(t *testing.T) {
	t.Parallel()
	c := newCustomer(t, customerConfig{grace: time.Hour})
	ctx := context.Background()
	k := &addon.Keeper{Service: c.svc, Links: c.store, Grace: time.Hour}
	a := c.provisioned(t)
	works := func(vars addon.Vars) bool {
		t.Helper()
		u, _ := url.Parse(vars["URL"])
		pw, _ := u.User.Password()
		_, err := c.driver.Authenticate(ctx, u.User.Username(), pw)
		return err == nil
	}
	if _, err := c.store.UpdateLink(ctx, a.ID, func(l *addon.Link) error {
		l.RetiredVars, l.RetireAt = a.Vars, time.Now().Add(-time.Minute)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := k.Retire(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if !works(a.Vars) {
		t.Fatal("the revocation job revoked the credentials the app uses")
	}
	if l, _ := c.store.Link(ctx, a.ID); l.RetiredVars != nil {
		t.Error("the unfinished roll is still waiting to retire")
	}

	rolled, err := k.Rotate(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !works(a.Vars) || !works(rolled.Vars) {
		t.Fatal("after the roll both keys must work")
	}
	if err := k.Retire(ctx, a.ID); err != nil || !works(a.Vars) {
		t.Fatalf("a revocation before the grace ended: %v, old key works %v", err, works(a.Vars))
	}
	if _, err := c.store.UpdateLink(ctx, a.ID, func(l *addon.Link) error { l.RetireAt = time.Now().Add(-time.Second); return nil }); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := k.Retire(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
	}
	if works(a.Vars) || !works(rolled.Vars) {
		t.Errorf("after the grace: old key works %v, new key works %v; want false, true", works(a.Vars), works(rolled.Vars))
	}
}
