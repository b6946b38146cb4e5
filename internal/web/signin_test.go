package web_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSignInsLeaveTheAddonAlone: each sign-in is in the audit trail, but
// the add-on's updated_at does not move (the reconciler reads it as recent
// work), and the dashboard shows a run of sign-ins as one line.
func TestSignInsLeaveTheAddonAlone(t *testing.T) {
	t.Parallel()
	c := newCustomer(t, customerConfig{})
	ctx := context.Background()
	a := c.provisioned(t)
	before, err := c.store.Get(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Read before the session's sign-in, so the seconds counted back from
	// it are all before the one the session signed: a sign-in is
	// single-use.
	start := time.Now()
	var sess = c.session(t, a.ID)
	for i := 1; i <= 3; i++ {
		s := newSigner(string(a.ID))
		s.at = start.Add(-time.Duration(i) * time.Second) // a fresh token each time
		if p := c.signIn(t, s.form(), nil); p.status != http.StatusSeeOther {
			t.Fatalf("sign-in %d: %d", i, p.status)
		}
	}
	after, err := c.store.Get(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Errorf("updated_at moved from %v to %v on sign-ins", before.UpdatedAt, after.UpdatedAt)
	}
	events, err := c.store.Events(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range events {
		if e.Kind == "sso" {
			n++
		}
	}
	if n != 4 {
		t.Errorf("%d sign-ins in the audit trail, want 4", n)
	}
	p := do(t, c.e, http.MethodGet, "/dashboard/resources/"+string(a.ID), nil, nil, sess)
	if p.status != http.StatusOK {
		t.Fatalf("dashboard: %d", p.status)
	}
	if got := strings.Count(p.body, "signed in through Heroku"); got != 1 {
		t.Errorf("the dashboard shows %d sign-in lines, want them collapsed into 1", got)
	}
	if !strings.Contains(p.body, "latest of 4 sign-ins") {
		t.Error("the collapsed line does not say how many sign-ins it stands for")
	}
}
