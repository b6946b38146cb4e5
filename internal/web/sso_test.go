package web_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/postgres"
)

func TestSSO(t *testing.T) {
	t.Parallel()
	c := newCustomer(t, customerConfig{})
	a := c.provisioned(t)

	tests := []struct {
		name   string
		signer func(id string) signer
		header map[string]string
		// want is the status; 303 also checks the cookies and the landing.
		want int
		// secure is whether the session cookie must be marked Secure.
		secure bool
		// age is how long before the test's start the sign-in was signed.
		age time.Duration
	}{
		{name: "user-scoped sha256 token", want: http.StatusSeeOther, signer: func(id string) signer {
			s := newSigner(id)
			s.omitResToken = true
			return s
		}},
		{name: "resource sha1 token", want: http.StatusSeeOther, signer: func(id string) signer {
			s := newSigner(id)
			s.omitUserToken = true
			return s
		}},
		{name: "both tokens", want: http.StatusSeeOther, signer: newSigner},
		// The audit trail keeps 256 bytes of the email; é straddles that
		// limit, and half of it is not UTF-8 Postgres would store.
		{name: "long email cut inside a character", want: http.StatusSeeOther, signer: func(id string) signer {
			s := newSigner(id)
			s.email = strings.Repeat("a", 255) + "é@example.com"
			return s
		}},
		{name: "legacy field names", want: http.StatusSeeOther, signer: func(id string) signer {
			s := newSigner(id)
			s.legacy, s.omitUserToken = true, true
			return s
		}},
		{name: "behind Heroku's TLS router", want: http.StatusSeeOther, signer: newSigner,
			header: map[string]string{"X-Forwarded-Proto": "https"}, secure: true},
		{name: "timestamp four minutes old", want: http.StatusSeeOther, signer: newSigner, age: 4 * time.Minute},
		{name: "wrong salt", want: http.StatusForbidden, signer: func(id string) signer {
			s := newSigner(id)
			s.salt = "not-the-salt"
			return s
		}},
		{name: "wrong sha1 token only", want: http.StatusForbidden, signer: func(id string) signer {
			s := newSigner(id)
			s.salt, s.omitUserToken = "not-the-salt", true
			return s
		}},
		{name: "user-scoped token signed for another email", want: http.StatusForbidden, signer: func(id string) signer {
			s := newSigner(id)
			s.omitResToken, s.signedEmail = true, "someone-else@example.com"
			return s
		}},
		{name: "timestamp six minutes old", want: http.StatusForbidden, signer: newSigner, age: 6 * time.Minute},
		{name: "timestamp two minutes ahead", want: http.StatusForbidden, signer: newSigner, age: -2 * time.Minute},
		{name: "no tokens", want: http.StatusForbidden, signer: func(id string) signer {
			s := newSigner(id)
			s.omitResToken, s.omitUserToken = true, true
			return s
		}},
		{name: "unknown add-on", want: http.StatusNotFound, signer: func(string) signer {
			return newSigner(uuid.NewString())
		}},
		// The tokens cover the id as Heroku spelt it; the session and the
		// dashboard use the add-on's lower-case id.
		{name: "upper-case resource id", want: http.StatusSeeOther, signer: func(id string) signer {
			return newSigner(strings.ToUpper(id))
		}},
		{name: "resource id that is not a uuid", want: http.StatusNotFound, signer: func(string) signer {
			return newSigner("not-a-uuid")
		}},
	}
	// Each case signs its own second, counted back from one start: a
	// sign-in is single-use, and seconds counted from each case's own
	// clock reading would meet again whenever a case takes a second.
	start := time.Now()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.signer(string(a.ID))
			s.at = start.Add(-tt.age - time.Duration(i)*time.Second)
			p := c.signIn(t, s.form(), tt.header)
			if p.status != tt.want {
				t.Fatalf("status = %d, want %d; body: %s", p.status, tt.want, p.body)
			}
			if tt.want != http.StatusSeeOther {
				if len(p.cookies) != 0 {
					t.Errorf("a refused sign-in set cookies: %v", p.cookies)
				}
				if strings.Contains(p.body, a.Name) {
					t.Errorf("a refused sign-in shows the add-on's name")
				}
				return
			}
			dashboard := "/dashboard/resources/" + string(a.ID)
			if loc := p.header.Get("Location"); loc != dashboard {
				t.Errorf("Location = %q, want the add-on's dashboard", loc)
			}
			sess, nav := p.cookies["kiln_session"], p.cookies["heroku-nav-data"]
			if sess == nil || nav == nil {
				t.Fatalf("cookies = %v, want kiln_session and heroku-nav-data", p.cookies)
			}
			if nav.Value != s.navData {
				t.Errorf("heroku-nav-data = %q, want the posted nav-data %q", nav.Value, s.navData)
			}
			if !sess.HttpOnly || sess.SameSite != http.SameSiteLaxMode || sess.Path != dashboard {
				t.Errorf("session cookie HttpOnly=%v SameSite=%v Path=%q; want HttpOnly, Lax, scoped to the dashboard", sess.HttpOnly, sess.SameSite, sess.Path)
			}
			if sess.MaxAge <= 0 || sess.MaxAge > 3600 {
				t.Errorf("session cookie MaxAge = %d, want a short lifetime", sess.MaxAge)
			}
			if sess.Secure != tt.secure || nav.Secure != tt.secure {
				t.Errorf("Secure = %v (session), %v (nav-data); want %v", sess.Secure, nav.Secure, tt.secure)
			}
			dash := do(t, c.e, http.MethodGet, dashboard, nil, nil, sess)
			if dash.status != http.StatusOK || !strings.Contains(dash.body, a.Name) {
				t.Fatalf("dashboard after sign-in: %d %s", dash.status, dash.body)
			}
		})
	}
}

func TestSSOReplay(t *testing.T) {
	t.Parallel()
	c := newCustomer(t, customerConfig{})
	a := c.provisioned(t)

	t.Run("same form twice", func(t *testing.T) {
		f := newSigner(string(a.ID)).form()
		if p := c.signIn(t, f, nil); p.status != http.StatusSeeOther {
			t.Fatalf("first sign-in: %d %s", p.status, p.body)
		}
		if p := c.signIn(t, f, nil); p.status != http.StatusForbidden || len(p.cookies) != 0 {
			t.Fatalf("replay: %d, cookies %v; want 403 and none", p.status, p.cookies)
		}
	})
	t.Run("replayed without the user-scoped token", func(t *testing.T) {
		s := newSigner(string(a.ID))
		s.at = time.Now().Add(-10 * time.Second)
		if p := c.signIn(t, s.form(), nil); p.status != http.StatusSeeOther {
			t.Fatalf("first sign-in: %d %s", p.status, p.body)
		}
		s.omitUserToken = true
		if p := c.signIn(t, s.form(), nil); p.status != http.StatusForbidden {
			t.Fatalf("stripped replay: %d; want 403", p.status)
		}
	})
	t.Run("sha1-only form twice", func(t *testing.T) {
		s := newSigner(string(a.ID))
		s.at = time.Now().Add(-20 * time.Second)
		s.omitUserToken = true
		if p := c.signIn(t, s.form(), nil); p.status != http.StatusSeeOther {
			t.Fatalf("first sign-in: %d %s", p.status, p.body)
		}
		if p := c.signIn(t, s.form(), nil); p.status != http.StatusForbidden {
			t.Fatalf("replay: %d; want 403", p.status)
		}
	})
	t.Run("two users in the same second", func(t *testing.T) {
		s := newSigner(string(a.ID))
		s.at = time.Now().Add(-30 * time.Second)
		if p := c.signIn(t, s.form(), nil); p.status != http.StatusSeeOther {
			t.Fatalf("first user: %d %s", p.status, p.body)
		}
		s.userID, s.email = "0c0c0c0c-1111-4222-8333-444444444444", "colleague@example.com"
		if p := c.signIn(t, s.form(), nil); p.status != http.StatusSeeOther {
			t.Fatalf("second user, own user-scoped token: %d %s; want 303", p.status, p.body)
		}
	})
	t.Run("concurrent replays: one wins", func(t *testing.T) {
		s := newSigner(string(a.ID))
		s.at = time.Now().Add(-40 * time.Second)
		f := s.form()
		codes := make(chan int, 6)
		for range cap(codes) {
			go func() { codes <- c.signIn(t, f, nil).status }()
		}
		won := 0
		for range cap(codes) {
			switch code := <-codes; code {
			case http.StatusSeeOther:
				won++
			case http.StatusForbidden:
			default:
				t.Errorf("unexpected status %d", code)
			}
		}
		if won != 1 {
			t.Fatalf("%d concurrent sign-ins with one form succeeded, want 1", won)
		}
	})
}

// TestSSOResubmitAfterFailure: a sign-in whose recording fails after its
// token was claimed (a database blip: 503) gives the claim back, so the
// customer resubmitting the same form gets in; once it has, the form is
// single-use again.
func TestSSOResubmitAfterFailure(t *testing.T) {
	t.Parallel()
	c := newCustomer(t, customerConfig{})

	tests := []struct {
		name   string
		signer func(id string) signer
	}{
		{name: "both tokens", signer: newSigner},
		{name: "resource sha1 token only", signer: func(id string) signer {
			s := newSigner(id)
			s.omitUserToken = true
			return s
		}},
		{name: "user-scoped sha256 token only", signer: func(id string) signer {
			s := newSigner(id)
			s.omitResToken = true
			return s
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := c.provisioned(t)
			failNextSignIn(t, c.store, a.ID)
			s := tt.signer(string(a.ID))
			f := s.form()
			if p := c.signIn(t, f, nil); p.status != http.StatusServiceUnavailable || len(p.cookies) != 0 {
				t.Fatalf("sign-in during the blip: %d %s, cookies %v; want 503 and none", p.status, p.body, p.cookies)
			}
			if p := c.signIn(t, f, nil); p.status != http.StatusSeeOther || p.cookies["kiln_session"] == nil {
				t.Fatalf("the same form resubmitted: %d %s; want 303 and a session", p.status, p.body)
			}
			if p := c.signIn(t, f, nil); p.status != http.StatusForbidden || !strings.Contains(p.body, "already used") || len(p.cookies) != 0 {
				t.Fatalf("replay of the successful form: %d %s; want 403 already used", p.status, p.body)
			}
			if s.omitResToken || s.omitUserToken {
				return
			}
			s.omitUserToken = true
			if p := c.signIn(t, s.form(), nil); p.status != http.StatusForbidden {
				t.Fatalf("replay without the user-scoped token: %d; want 403", p.status)
			}
		})
	}
}

// failNextSignIn makes the next sign-in recorded for the add-on fail as a
// database blip does (query_canceled: 503), once, with a trigger on the
// audit trail; the counting sequence is not rolled back with the failed
// insert, so the sign-in after it is recorded.
func failNextSignIn(tb testing.TB, store *postgres.DB, id addon.ID) {
	tb.Helper()
	name := "test_fail_sso_" + strings.ReplaceAll(string(id), "-", "")
	for _, q := range []string{
		`CREATE SEQUENCE ` + name,
		`CREATE FUNCTION ` + name + `() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.kind = 'sso' AND NEW.addon_id = '` + string(id) + `'::uuid THEN
				IF nextval('` + name + `') = 1 THEN
					RAISE EXCEPTION 'injected database blip' USING ERRCODE = '57014';
				END IF;
			END IF;
			RETURN NEW;
		END $$`,
		`CREATE TRIGGER ` + name + ` BEFORE INSERT ON addon_events FOR EACH ROW EXECUTE FUNCTION ` + name + `()`,
	} {
		if err := store.Gorm().Exec(q).Error; err != nil {
			tb.Fatalf("failNextSignIn: %v", err)
		}
	}
}

func TestSSORecordsWhoSignedIn(t *testing.T) {
	t.Parallel()
	c := newCustomer(t, customerConfig{})
	a := c.provisioned(t)
	ctx := context.Background()

	s := newSigner(string(a.ID))
	if p := c.signIn(t, s.form(), nil); p.status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", p.status)
	}
	u := newSigner(string(a.ID))
	u.at = s.at.Add(-time.Second)
	u.omitUserToken, u.email = true, "claims-to-be@example.com"
	if p := c.signIn(t, u.form(), nil); p.status != http.StatusSeeOther {
		t.Fatalf("sha1 sign-in: %d", p.status)
	}
	events, err := c.store.Events(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	var sso []string
	for _, e := range events {
		if e.Kind == "sso" {
			sso = append(sso, e.Message)
		}
	}
	if len(sso) != 2 {
		t.Fatalf("sso events = %q, want 2", sso)
	}
	if !strings.Contains(sso[0], s.email) || !strings.Contains(sso[0], s.userID) || strings.Contains(sso[0], "unverified") {
		t.Errorf("first sign-in recorded as %q; want the verified email and user id", sso[0])
	}
	if !strings.Contains(sso[1], "claims-to-be@example.com (unverified)") {
		t.Errorf("sha1 sign-in recorded as %q; want the email marked unverified", sso[1])
	}
}

func TestSSORefusesGoneAddons(t *testing.T) {
	t.Parallel()
	c := newCustomer(t, customerConfig{})
	ctx := context.Background()
	a := c.provisioned(t)
	// Read before the session's sign-in, so the seconds counted back from
	// it are all before the one the session signed: a sign-in is
	// single-use, and these must be refused for the add-on alone.
	start := time.Now()
	sess := c.session(t, a.ID)
	if err := c.svc.Deprovision(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	s := newSigner(string(a.ID))
	s.at = start.Add(-time.Second)
	if p := c.signIn(t, s.form(), nil); p.status != http.StatusForbidden || strings.Contains(p.body, "already used") {
		t.Errorf("sign-in to a deprovisioning add-on: %d %s; want 403 for the add-on, not a replay", p.status, p.body)
	}
	if p := do(t, c.e, http.MethodGet, "/dashboard/resources/"+string(a.ID), nil, nil, sess); p.status != http.StatusGone || strings.Contains(p.body, testPrefix+"_URL") {
		t.Errorf("dashboard of a deprovisioning add-on with an earlier session: %d; want 410 and no config", p.status)
	}
	if err := c.svc.DeprovisionJob(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	s.at = s.at.Add(-time.Second) // a fresh sign-in, refused for the add-on alone
	if p := c.signIn(t, s.form(), nil); p.status != http.StatusForbidden || strings.Contains(p.body, "already used") {
		t.Errorf("sign-in to a deprovisioned add-on: %d %s; want 403 for the add-on, not a replay", p.status, p.body)
	}
	events, err := c.store.Events(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	var sso []addon.Event
	for _, e := range events {
		if e.Kind == "sso" {
			sso = append(sso, e)
		}
	}
	if len(sso) != 1 || sso[0].State != addon.StateProvisioned {
		t.Errorf("sso events = %+v; want only the sign-in made while provisioned, refusals unrecorded", sso)
	}
}

func TestSSONotConfigured(t *testing.T) {
	t.Parallel()
	e, _ := bare(t) // no salt, no session keys, no nonces
	p := do(t, e, http.MethodPost, "/sso/login", newSigner(uuid.NewString()).form(), nil)
	if p.status < 400 || len(p.cookies) != 0 {
		t.Fatalf("sign-in without SSO configuration: %d, cookies %v; want a refusal", p.status, p.cookies)
	}
}
