package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/asheroku"
	"github.com/kiln-dev/kiln/internal/herokusim"
)

// statuses maps each check's name to its status, for assertions.
func statuses(r *Report) map[string]Status {
	m := map[string]Status{}
	for _, res := range r.Results {
		m[res.Name] = res.Status
	}
	return m
}

// TestBrokenKiln runs the checks against a server that answers 200 {} to
// everything, checking nothing: every check it can reach must fail, the
// rest must be skipped, and the table must say so.
func TestBrokenKiln(t *testing.T) {
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	}))
	defer broken.Close()
	_, simSrv := herokusim.NewServer(t, herokusim.Options{})

	var streamed []Result
	report := Run(context.Background(), Options{
		Kiln:     asheroku.NewKiln(broken.URL, "kiln", "password"),
		Sim:      asheroku.NewSim(simSrv.URL),
		SSOSalt:  "salt",
		OnResult: func(r Result) { streamed = append(streamed, r) },
	})
	if report.OK() {
		t.Fatal("a Kiln without auth checks passed conformance")
	}
	want := map[string]Status{
		CheckProvisionNoAuth:      Fail,
		CheckProvisionWrongUser:   Fail,
		CheckProvisionWrongPass:   Fail,
		CheckPlanWrongPass:        Fail,
		CheckDeprovisionWrongPass: Fail,
		CheckProvision:            Fail, // 200 {} has no id
		CheckProvisionRepeat:      Skip,
		CheckProvisioned:          Skip,
		CheckSSOGood:              Skip,
		CheckProvisionGone:        Skip,
	}
	got := statuses(report)
	for name, s := range want {
		if got[name] != s {
			t.Errorf("%s: %s, want %s", name, got[name], s)
		}
	}
	if len(streamed) != len(report.Results) {
		t.Errorf("OnResult saw %d results, the report has %d", len(streamed), len(report.Results))
	}
	var b bytes.Buffer
	if err := report.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	table := b.String()
	for _, line := range []string{
		"FAIL    provision: 401 without credentials",
		"got 200 {}; want 401",
		"6 failed",
	} {
		if !strings.Contains(table, line) {
			t.Errorf("table lacks %q:\n%s", line, table)
		}
	}
}

// TestSilentKiln is a Kiln that answers the Partner API correctly but was
// not pointed at the simulator: the provisioned check must fail and say
// what to fix, not hang.
func TestSilentKiln(t *testing.T) {
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if u, p, ok := r.BasicAuth(); !ok || u != "kiln" || p != "password" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"id":"unauthorized","message":"Invalid credentials."}`))
			return
		}
		var body struct{ UUID string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]string{"id": body.UUID, "message": "ok"})
	}))
	defer silent.Close()
	_, simSrv := herokusim.NewServer(t, herokusim.Options{})

	report := Run(context.Background(), Options{
		Kiln:             asheroku.NewKiln(silent.URL, "kiln", "password"),
		Sim:              asheroku.NewSim(simSrv.URL),
		SSOSalt:          "salt",
		ProvisionTimeout: 500 * time.Millisecond,
		Poll:             20 * time.Millisecond,
	})
	got := statuses(report)
	for _, name := range []string{CheckProvisionNoAuth, CheckProvisionWrongPass, CheckDeprovisionWrongPass, CheckProvision, CheckProvisionRepeat} {
		if got[name] != Pass {
			t.Errorf("%s: %s, want PASS", name, got[name])
		}
	}
	if got[CheckProvisioned] != Fail || got[CheckVarNames] != Skip {
		t.Fatalf("provisioned %s, var names %s; want FAIL and SKIP", got[CheckProvisioned], got[CheckVarNames])
	}
	for _, res := range report.Results {
		if res.Name == CheckProvisioned && !strings.Contains(res.Detail, "HEROKU_API_URL") {
			t.Errorf("the failure does not say what to fix: %s", res.Detail)
		}
	}
}

// TestUnreachableSimulator fails clearly when no simulator answers.
func TestUnreachableSimulator(t *testing.T) {
	kiln := httptest.NewServer(http.NotFoundHandler())
	defer kiln.Close()
	report := Run(context.Background(), Options{
		Kiln: asheroku.NewKiln(kiln.URL, "kiln", "password"),
		Sim:  asheroku.NewSim("http://127.0.0.1:1"),
	})
	for _, res := range report.Results {
		if res.Name == CheckProvision {
			if res.Status != Fail || !strings.Contains(res.Detail, "Heroku simulator at http://127.0.0.1:1") {
				t.Fatalf("provision row = %+v", res)
			}
			return
		}
	}
	t.Fatal("no provision row")
}

// ssoServer is a provider's SSO endpoint as Heroku specifies it, with knobs
// to break one rule at a time.
func ssoServer(t *testing.T, salt string, checkToken, checkAge, setCookie bool) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /sso/login", func(w http.ResponseWriter, r *http.Request) {
		id, ts := r.FormValue("resource_id"), r.FormValue("timestamp")
		n, _ := strconv.ParseInt(ts, 10, 64)
		if checkToken && r.FormValue("resource_token") != asheroku.ResourceToken(id, salt, n) {
			http.Error(w, "bad token", http.StatusForbidden)
			return
		}
		if checkAge && time.Since(time.Unix(n, 0)) > 5*time.Minute {
			http.Error(w, "expired", http.StatusForbidden)
			return
		}
		if setCookie {
			http.SetCookie(w, &http.Cookie{Name: asheroku.NavDataCookie, Value: r.FormValue("nav-data"), Path: "/"})
		}
		http.SetCookie(w, &http.Cookie{Name: "session", Value: id, Path: "/"})
		http.Redirect(w, r, "/dashboard/"+id, http.StatusSeeOther)
	})
	mux.HandleFunc("GET /dashboard/{id}", func(w http.ResponseWriter, r *http.Request) {
		if c, err := r.Cookie("session"); err != nil || c.Value != r.PathValue("id") {
			http.Error(w, "no session", http.StatusForbidden)
			return
		}
		_, _ = w.Write([]byte("dashboard"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// TestSSOChecks runs the SSO checks against endpoints that follow Heroku's
// rules and against ones that each break one.
func TestSSOChecks(t *testing.T) {
	const salt = "sso-salt"
	tests := []struct {
		name                         string
		checkToken, checkAge, cookie bool
		want                         map[string]Status
	}{
		{"correct", true, true, true, map[string]Status{CheckSSOBadToken: Pass, CheckSSOOld: Pass, CheckSSOGood: Pass}},
		{"no token check", false, true, true, map[string]Status{CheckSSOBadToken: Fail, CheckSSOOld: Pass, CheckSSOGood: Pass}},
		{"no timestamp check", true, false, true, map[string]Status{CheckSSOBadToken: Pass, CheckSSOOld: Fail, CheckSSOGood: Pass}},
		{"no nav-data cookie", true, true, false, map[string]Status{CheckSSOBadToken: Pass, CheckSSOOld: Pass, CheckSSOGood: Fail}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := ssoServer(t, salt, tt.checkToken, tt.checkAge, tt.cookie)
			r := &runner{o: Options{Kiln: asheroku.NewKiln(srv.URL, "kiln", "pw"), SSOSalt: salt}, report: &Report{}}
			r.sso(context.Background(), "01234567-89ab-cdef-0123-456789abcdef")
			got := statuses(r.report)
			for name, want := range tt.want {
				if got[name] != want {
					t.Errorf("%s: %s, want %s (%v)", name, got[name], want, r.report.Results)
				}
			}
		})
	}
}
