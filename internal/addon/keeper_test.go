package addon

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestNextSyncSpreadsTheFleet(t *testing.T) {
	const interval = time.Hour
	now := time.Date(2026, 3, 3, 18, 17, 0, 0, time.UTC)
	buckets := make([]int, 6) // ten-minute slices of the hour
	const n = 6000
	for i := 0; i < n; i++ {
		id := ID(uuid.NewString())
		next := NextSync(id, now, interval)
		if !next.After(now) || next.Sub(now) > interval {
			t.Fatalf("NextSync(%s) = %s, want within (now, now+interval]", id, next)
		}
		if again := NextSync(id, next, interval); again.Sub(next) != interval {
			t.Fatalf("the next slot after a slot is %s later, want exactly the interval", again.Sub(next))
		}
		upper, err := ParseID(strings.ToUpper(string(id)))
		if err != nil {
			t.Fatal(err)
		}
		if NextSync(upper, now, interval) != next {
			t.Fatal("the slot depends on the case Heroku spelt the id in")
		}
		buckets[next.Sub(now.Truncate(interval))%interval/(10*time.Minute)]++
	}
	for i, c := range buckets {
		if c < n/6*8/10 || c > n/6*12/10 {
			t.Errorf("slice %d of the hour has %d of %d add-ons: not spread", i, c, n)
		}
	}
	if !NextSync("x", now, 0).IsZero() {
		t.Error("a zero interval has a slot")
	}
}

func TestMilestone(t *testing.T) {
	tests := []struct {
		e     Event
		want  string
		isErr bool
	}{
		{Event{Kind: "state", State: StateProvisioning, Message: "provision requested on plan basic"}, "Provisioning started on plan basic.", false},
		{Event{Kind: "step", State: StateProvisioning, Message: "resource created by driver account"}, "Resource ready.", false},
		{Event{Kind: "step", State: StateProvisioning, Message: "OAuth grant exchanged"}, "", false},
		{Event{Kind: "step", State: StateProvisioning, Message: "access token refreshed"}, "", false},
		{Event{Kind: "state", State: StateProvisioned}, "Provisioned: the config vars are set and the app restarts with them.", false},
		{Event{Kind: "plan", State: StateProvisioned, Message: "plan changed from test to basic"}, "Plan changed from test to basic.", false},
		{Event{Kind: "plan", State: StateProvisioned, Message: "plan change to test refused: The database uses 9 MB."}, "Plan change to test refused: The database uses 9 MB.", true},
		{Event{Kind: "credentials", State: StateProvisioned, Message: "credentials rotated; the old ones keep working until 2026-03-03T19:00:00Z"}, "Credentials rotated: the new ones are in the config vars; the old ones keep working until 2026-03-03T19:00:00Z.", false},
		{Event{Kind: "credentials", State: StateProvisioned, Message: "credentials rotated"}, "Credentials rotated: the new ones are in the config vars; the old ones no longer work.", false},
		{Event{Kind: "state", State: StateFailed, Message: "Heroku refused the OAuth grant: OAuth authorization invalid."}, "Provisioning failed: Heroku refused the OAuth grant: OAuth authorization invalid.", true},
		{Event{Kind: "state", State: StateFailed, Message: "cannot reach postgres://kiln:hunter2@db:5432/x"}, "Provisioning failed: cannot reach postgres://[redacted]@db:5432/x.", true},
		{Event{Kind: "state", State: StateDeprovisioning, Message: ReasonRemovedOnHeroku}, "Deprovisioning: removed on Heroku.", false},
		{Event{Kind: "sso", Message: "signed in"}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.e.Kind+"/"+tt.e.Message, func(t *testing.T) {
			got, ok := Milestone(tt.e)
			if ok != (tt.want != "") || got.Message != tt.want || got.Error != tt.isErr {
				t.Errorf("Milestone = %q (error %v, ok %v), want %q (error %v)", got.Message, got.Error, ok, tt.want, tt.isErr)
			}
		})
	}
}

func TestScrub(t *testing.T) {
	for in, want := range map[string]string{
		"https://token:t.abc@1.us.logplex.io/logs": "https://[redacted]@1.us.logplex.io/logs",
		"password=hunter2 and more":                "password=[redacted] and more",
		"api_key: abc":                             "api_key=[redacted]",
		"nothing secret here":                      "nothing secret here",
	} {
		if got := Scrub(in); got != want {
			t.Errorf("Scrub(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestApplyWebhook(t *testing.T) {
	ev := func(action, data string) webhookEvent {
		return webhookEvent{Action: action, Data: json.RawMessage(data)}
	}
	l := &Link{AppID: "app-1", AppName: "acme"}
	steps := []struct {
		typ      string
		ev       webhookEvent
		app      string
		attached []string
	}{
		{"api:app", ev("update", `{"id":"app-1","name":"acme-prod"}`), "acme-prod", nil},
		{"api:app", ev("update", `{"id":"other-app","name":"elsewhere"}`), "acme-prod", nil},
		{"api:addon-attachment", ev("create", `{"id":"at-1","name":"KILN","app":{"id":"app-1","name":"acme-prod"}}`), "acme-prod", []string{"acme-prod"}},
		{"api:addon-attachment", ev("create", `{"id":"at-2","name":"KILN_STAGING","app":{"id":"app-2","name":"acme-staging"}}`), "acme-prod", []string{"acme-prod", "acme-staging"}},
		{"api:app", ev("update", `{"id":"app-2","name":"acme-stage"}`), "acme-prod", []string{"acme-prod", "acme-stage"}},
		{"api:addon-attachment", ev("destroy", `{"id":"at-2","name":"KILN_STAGING","app":{"id":"app-2","name":"acme-stage"}}`), "acme-prod", []string{"acme-prod"}},
		{"api:app", ev("destroy", `{"id":"app-1","name":"acme-prod"}`), "acme-prod", []string{"acme-prod"}},
	}
	for i, s := range steps {
		if err := applyWebhook(l, s.typ, s.ev); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		var apps []string
		for _, a := range l.Attachments {
			apps = append(apps, a.AppName)
		}
		if l.AppName != s.app || strings.Join(apps, ",") != strings.Join(s.attached, ",") {
			t.Errorf("step %d: app %q attachments %v, want %q %v", i, l.AppName, apps, s.app, s.attached)
		}
	}
	if err := applyWebhook(l, "api:addon-attachment", ev("create", `"nope"`)); ErrorCode(err) != EMALFORMED {
		t.Errorf("unreadable data: %v, want EMALFORMED", err)
	}
}

func TestHerokuAsked(t *testing.T) {
	if !herokuAsked("deprovision requested by Heroku") || herokuAsked(ReasonRemovedOnHeroku) || herokuAsked(ForcedPrefix+": abuse") {
		t.Error("herokuAsked tells Heroku's DELETE from Kiln's own deprovisions wrongly")
	}
}
