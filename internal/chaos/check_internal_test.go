package chaos

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/herokusim"
	"github.com/kiln-dev/kiln/internal/postgres/pgtest"
)

// TestGrantExchangedTwice: a second, refused exchange is excused only when
// the very process Heroku answered was SIGKILLed while the answer was on
// its way, and the add-on ended failed; any other second exchange is a
// violation, so the excuse cannot hide tokens lost by Kiln itself.
func TestGrantExchangedTwice(t *testing.T) {
	db, _ := pgtest.Store(t)
	sim := herokusim.New(herokusim.Options{ClientSecret: clientSecret})
	s := &stack{sim: sim, db: db, kills: map[string][]time.Time{}, callers: callers{ids: map[string]string{}}}
	w1 := httptest.NewServer(s.callers.tag("worker.1", sim))
	defer w1.Close()
	w := newWorkload(s, nil, 1)
	ctx := context.Background()

	exchange := func(id, code string) int {
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_secret": {clientSecret}}
		resp, err := http.PostForm(w1.URL+"/oauth/token", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	tests := []struct {
		name    string
		killed  string        // the process SIGKILLed, "" for none
		after   time.Duration // how long after Heroku received the first exchange
		state   addon.State
		excused bool
	}{
		{"nothing was killed: Kiln lost the tokens", "", 0, addon.StateFailed, false},
		{"the caller died with the answer on its way", "worker.1", 300 * time.Millisecond, addon.StateFailed, true},
		{"another process died", "worker.2", 300 * time.Millisecond, addon.StateFailed, false},
		{"the caller died long after it had the answer", "worker.1", 10 * time.Second, addon.StateFailed, false},
		{"the add-on carried on as if nothing happened", "worker.1", 300 * time.Millisecond, addon.StateProvisioning, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.kills = map[string][]time.Time{} // each case its own history
			id := uuid.NewString()
			grant := sim.NewAddon(id)
			a := &addon.Addon{ID: addon.ID(id), Name: "chaos-" + id[:8], Plan: "test", State: tt.state, Reason: "Heroku refused the OAuth grant after an earlier exchange attempt"}
			if _, _, err := db.Create(ctx, a); err != nil {
				t.Fatal(err)
			}
			w.addons = append(w.addons, &tracked{id: id, accepted: true, plan: "test"})
			if st := exchange(id, grant.Code); st != http.StatusOK {
				t.Fatalf("first exchange answered %d", st)
			}
			if st := exchange(id, grant.Code); st/100 != 4 {
				t.Fatalf("second exchange answered %d, want a refusal", st)
			}
			var first herokusim.Call
			for _, c := range sim.Calls() {
				if c.AddonID == id && c.Kind == herokusim.KindGrant {
					first = c
					break
				}
			}
			if tt.killed != "" {
				s.kills[tt.killed] = append(s.kills[tt.killed], first.At.Add(tt.after))
			}
			res := w.check(ctx)
			has := func(list []string) bool {
				return slices.ContainsFunc(list, func(v string) bool { return strings.HasPrefix(v, id) })
			}
			if got := has(res.excused[InvGrantOnce]); got != tt.excused {
				t.Errorf("excused = %v, want %v (violations %v)", got, tt.excused, res.violations[InvGrantOnce])
			}
			if got := has(res.violations[InvGrantOnce]); got == tt.excused {
				t.Errorf("violation reported = %v, want %v", got, !tt.excused)
			}
		})
	}
}
