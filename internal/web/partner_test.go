package web_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/kiln-dev/kiln/internal/addon"
)

func TestPartnerAuth(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envConfig{})

	tests := []struct {
		name       string
		user, pass string
		header     map[string]string
		want       int
	}{
		{name: "no credentials", want: http.StatusUnauthorized},
		{name: "wrong user", user: "someone-else", pass: password1, want: http.StatusUnauthorized},
		{name: "wrong password", user: testAddonID, pass: "not-the-password", want: http.StatusUnauthorized},
		{name: "empty password", user: testAddonID, want: http.StatusUnauthorized},
		{name: "both passwords as one", user: testAddonID, pass: password1 + "," + password2, want: http.StatusUnauthorized},
		{name: "bearer instead of basic", header: map[string]string{"Authorization": "Bearer " + password1}, want: http.StatusUnauthorized},
		{name: "first password", user: testAddonID, pass: password1, want: http.StatusAccepted},
		{name: "second password", user: testAddonID, pass: password2, want: http.StatusAccepted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := uuid.NewString()
			r := heroku(http.MethodPost, "/heroku/resources", provisionBody(id))
			r.user, r.pass = tt.user, tt.pass
			for k, v := range tt.header {
				r.header[k] = v
			}
			a := serve(t, env.e, r)
			if a.status != tt.want {
				t.Fatalf("status %d, want %d: %s", a.status, tt.want, a.raw)
			}
			if tt.want != http.StatusUnauthorized {
				if a.ID != id {
					t.Errorf("id %q, want %q", a.ID, id)
				}
				return
			}
			if a.ID != addon.EUNAUTHORIZED || a.Msg == "" {
				t.Errorf("body %s, want id %q and a message", a.raw, addon.EUNAUTHORIZED)
			}
			if got := a.header.Get("WWW-Authenticate"); got != `Basic realm="Kiln"` {
				t.Errorf("WWW-Authenticate %q", got)
			}
			if env.stored(t, id) != nil {
				t.Errorf("an unauthenticated request recorded add-on %s", id)
			}
		})
	}
}

func TestProvision(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envConfig{})
	herokuExpiry := time.Date(2016, 3, 3, 18, 1, 31, 0, time.FixedZone("", -8*3600))

	tests := []struct {
		name    string
		body    func(id string) string
		header  map[string]string
		want    int
		wantID  string   // error id; "" for success
		msgHas  []string // substrings of the message
		answer  func(t *testing.T, a answer)
		check   func(t *testing.T, a *addon.Addon)
		jobKind addon.JobKind // the one job queued; "" means none
	}{
		{
			name: "heroku request",
			body: provisionBody,
			want: http.StatusAccepted,
			check: func(t *testing.T, a *addon.Addon) {
				if a.Plan != "test" || a.Name != "acme-inc-primary-database" || a.Region != "amazon-web-services::us-east-1" {
					t.Errorf("stored %+v", a)
				}
				if a.Options["foo"] != "bar" || a.Options["flag"] != "true" || len(a.Options) != 2 {
					t.Errorf("options %v", a.Options)
				}
				if a.Grant == nil || !strings.HasPrefix(a.Grant.Code, "grant-code-") || !a.Grant.ExpiresAt.Equal(herokuExpiry) {
					t.Errorf("grant %+v, want expiry %v", a.Grant, herokuExpiry)
				}
				if a.LogDrainToken != "d.secret-drain-token" || !strings.Contains(a.LogInputURL, "logplex") {
					t.Errorf("log fields %q %q", a.LogInputURL, a.LogDrainToken)
				}
				if a.State != addon.StateProvisioning {
					t.Errorf("state %s", a.State)
				}
			},
			jobKind: addon.JobGrant,
		},
		{
			name: "RFC 3339 grant expiry",
			body: func(id string) string {
				return strings.Replace(provisionBody(id), "2016-03-03T18:01:31-0800", "2016-03-04T02:01:31Z", 1)
			},
			want: http.StatusAccepted,
			check: func(t *testing.T, a *addon.Addon) {
				if a.Grant == nil || !a.Grant.ExpiresAt.Equal(herokuExpiry) {
					t.Errorf("grant %+v, want expiry %v", a.Grant, herokuExpiry)
				}
			},
			jobKind: addon.JobGrant,
		},
		{
			name: "unreadable grant expiry assumes five minutes",
			body: func(id string) string {
				return strings.Replace(provisionBody(id), "2016-03-03T18:01:31-0800", "next tuesday", 1)
			},
			want: http.StatusAccepted,
			check: func(t *testing.T, a *addon.Addon) {
				if a.Grant == nil || a.Grant.ExpiresAt.Before(time.Now()) || a.Grant.ExpiresAt.After(time.Now().Add(5*time.Minute)) {
					t.Errorf("grant %+v, want an expiry within five minutes from now", a.Grant)
				}
			},
			jobKind: addon.JobGrant,
		},
		{
			name: "null grant is provisioned synchronously",
			body: func(id string) string {
				return `{"uuid":"` + id + `","plan":"basic","oauth_grant":null,"options":null}`
			},
			want: http.StatusOK,
			answer: func(t *testing.T, a answer) {
				if !strings.HasPrefix(a.Config["KILN_TEST_URL"], "http") {
					t.Errorf("config %v, want KILN_TEST_URL", a.Config)
				}
				if cc := a.header.Get("Cache-Control"); cc != "no-store" {
					t.Errorf("Cache-Control %q on an answer with credentials, want no-store", cc)
				}
			},
			check: func(t *testing.T, a *addon.Addon) {
				if a.Grant != nil || len(a.Options) != 0 || a.Plan != "basic" || a.State != addon.StateProvisioned {
					t.Errorf("stored %+v, want provisioned on basic without grant", a)
				}
			},
		},
		{
			name: "unknown fields tolerated",
			body: func(id string) string {
				return `{"uuid":"` + id + `","plan":"test","future_field":{"nested":[1,2]},"addon_service":"kiln",` +
					`"oauth_grant":{"code":"c","expires_at":"2016-03-03T18:01:31-0800","type":"authorization_code","extra":1}}`
			},
			want:    http.StatusAccepted,
			jobKind: addon.JobGrant,
		},
		{
			name: "unknown plan",
			body: func(id string) string {
				return strings.Replace(provisionBody(id), `"plan": "test"`, `"plan": "gold-plated"`, 1)
			},
			want:   http.StatusUnprocessableEntity,
			wantID: addon.EINVALID,
			msgHas: []string{"gold-plated", "test", "basic"},
		},
		{
			name:   "malformed JSON",
			body:   func(id string) string { return `{"uuid": "` + id + `", "plan": ` },
			want:   http.StatusBadRequest,
			wantID: addon.EMALFORMED,
		},
		{
			name:   "empty body",
			body:   func(string) string { return "" },
			want:   http.StatusBadRequest,
			wantID: addon.EMALFORMED,
		},
		{
			name:   "JSON that is not an object",
			body:   func(string) string { return `["uuid"]` },
			want:   http.StatusUnprocessableEntity,
			wantID: addon.EINVALID,
			msgHas: []string{"JSON object"},
		},
		{
			name:   "missing uuid",
			body:   func(string) string { return `{"plan":"test"}` },
			want:   http.StatusUnprocessableEntity,
			wantID: addon.EINVALID,
			msgHas: []string{"uuid"},
		},
		{
			name:   "malformed uuid",
			body:   func(string) string { return `{"uuid":"not-a-uuid","plan":"test"}` },
			want:   http.StatusUnprocessableEntity,
			wantID: addon.EINVALID,
			msgHas: []string{"not-a-uuid"},
		},
		{
			name:   "uuid of the wrong type",
			body:   func(string) string { return `{"uuid":12345,"plan":"test"}` },
			want:   http.StatusUnprocessableEntity,
			wantID: addon.EINVALID,
			msgHas: []string{"uuid", "string"},
		},
		{
			name: "non-string option",
			body: func(id string) string {
				return strings.Replace(provisionBody(id), `"flag": "true"`, `"flag": true, "size": 3`, 1)
			},
			want:   http.StatusUnprocessableEntity,
			wantID: addon.EINVALID,
			msgHas: []string{`"flag"`, "string"},
		},
		{
			name: "options not an object",
			body: func(id string) string {
				return strings.Replace(provisionBody(id), `{"foo": "bar", "flag": "true"}`, `["foo"]`, 1)
			},
			want:   http.StatusUnprocessableEntity,
			wantID: addon.EINVALID,
			msgHas: []string{"options"},
		},
		{
			name: "grant without code",
			body: func(id string) string {
				return `{"uuid":"` + id + `","plan":"test","oauth_grant":{"expires_at":"2016-03-03T18:01:31-0800"}}`
			},
			want:   http.StatusUnprocessableEntity,
			wantID: addon.EINVALID,
			msgHas: []string{"oauth_grant.code"},
		},
		{
			name:    "text/html accepted too",
			body:    provisionBody,
			header:  map[string]string{"Accept": "text/html"},
			want:    http.StatusAccepted,
			jobKind: addon.JobGrant,
		},
		{
			name:    "no Accept or Content-Type",
			body:    provisionBody,
			header:  map[string]string{"Accept": "", "Content-Type": ""},
			want:    http.StatusAccepted,
			jobKind: addon.JobGrant,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := uuid.NewString()
			r := heroku(http.MethodPost, "/heroku/resources", tt.body(id))
			for k, v := range tt.header {
				r.header[k] = v
			}
			a := serve(t, env.e, r)
			if a.status != tt.want {
				t.Fatalf("status %d, want %d: %s", a.status, tt.want, a.raw)
			}
			if ct := a.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			stored := env.stored(t, id)
			if tt.wantID != "" {
				if a.ID != tt.wantID {
					t.Errorf("id %q, want %q (%s)", a.ID, tt.wantID, a.raw)
				}
				for _, s := range tt.msgHas {
					if !strings.Contains(a.Msg, s) {
						t.Errorf("message %q does not mention %q", a.Msg, s)
					}
				}
				if stored != nil {
					t.Errorf("a refused request recorded add-on %s", id)
				}
				return
			}
			if a.ID != id || a.Msg == "" {
				t.Errorf("answer %s, want id %s and a message", a.raw, id)
			}
			if tt.want == http.StatusAccepted && a.Config != nil {
				t.Errorf("an asynchronous answer carries config: %s", a.raw)
			}
			if tt.answer != nil {
				tt.answer(t, a)
			}
			if stored == nil {
				t.Fatalf("add-on %s not recorded", id)
			}
			if tt.check != nil {
				tt.check(t, stored)
			}
			tasks := tasksFor(t, env.redis, id)
			switch {
			case tt.jobKind == "" && len(tasks) != 0:
				t.Errorf("tasks %v, want none", taskTypes(tasks))
			case tt.jobKind != "" && (len(tasks) != 1 || tasks[0].Type != string(tt.jobKind)):
				t.Errorf("tasks %v, want one %s", taskTypes(tasks), tt.jobKind)
			}
		})
	}
}

func TestProvisionBodyLimit(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envConfig{})

	tests := []struct {
		name    string
		chunked bool
	}{
		{name: "declared length"},
		{name: "chunked", chunked: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := uuid.NewString()
			pad := strings.Repeat("x", 70<<10)
			body := strings.Replace(provisionBody(id), `"foo": "bar"`, `"foo": "`+pad+`"`, 1)
			r := heroku(http.MethodPost, "/heroku/resources", body)
			r.chunked = tt.chunked
			a := serve(t, env.e, r)
			if a.status != http.StatusRequestEntityTooLarge || a.ID != addon.ETOOLARGE || !strings.Contains(a.Msg, "64 KiB") {
				t.Fatalf("answer %d %s, want 413 too_large naming the limit", a.status, a.raw)
			}
			if a.header.Get("Request-Id") == "" {
				t.Errorf("no Request-Id on the 413")
			}
			if env.stored(t, id) != nil || env.rows(t, id) != 0 {
				t.Errorf("an oversized request recorded add-on %s", id)
			}
		})
	}
}

// TestProvisionRepeated covers at-least-once delivery: a repeated request
// (one after the other, or twenty at once) gets the first answer again,
// records one add-on, writes nothing more and queues at most one job.
func TestProvisionRepeated(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envConfig{})
	setState := func(to ...addon.State) func(t *testing.T, id string) {
		return func(t *testing.T, id string) {
			_, err := env.store.Update(context.Background(), addon.ID(id), func(ctx context.Context, a *addon.Addon) error {
				for _, s := range to {
					if err := a.Transition(time.Now(), s, "set by the test"); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	syncBody := func(id string) string { return `{"uuid":"` + id + `","plan":"test","oauth_grant":null}` }

	tests := []struct {
		name       string
		body       func(id string) string
		concurrent bool
		n          int
		between    func(t *testing.T, id string) // runs after the first request
		want       int
		tasks      int
	}{
		{name: "serial", body: provisionBody, n: 3, want: http.StatusAccepted, tasks: 1},
		{name: "concurrent", body: provisionBody, concurrent: true, n: 20, want: http.StatusAccepted, tasks: 1},
		{name: "already provisioned", body: provisionBody, n: 2, between: setState(addon.StateProvisioned), want: http.StatusAccepted, tasks: 1},
		{name: "failed", body: provisionBody, n: 2, between: setState(addon.StateFailed), want: http.StatusAccepted, tasks: 1},
		{name: "synchronous serial", body: syncBody, n: 3, want: http.StatusOK, tasks: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := uuid.NewString()
			r := heroku(http.MethodPost, "/heroku/resources", tt.body(id))
			answers := make([]answer, tt.n)
			wantEvents := 1 // the one "provision requested" of the first request
			if tt.concurrent {
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i := range answers {
					wg.Go(func() {
						<-start
						answers[i] = serve(t, env.e, r)
					})
				}
				close(start)
				wg.Wait()
			} else {
				for i := range answers {
					answers[i] = serve(t, env.e, r)
					if i > 0 {
						continue
					}
					if tt.between != nil {
						tt.between(t, id)
					}
					events, err := env.store.Events(context.Background(), addon.ID(id))
					if err != nil {
						t.Fatal(err)
					}
					wantEvents = len(events)
				}
			}
			for i, a := range answers {
				if a.status != tt.want || a.raw != answers[0].raw || a.ID != id {
					t.Errorf("answer %d: %d %s, want %d %s", i, a.status, a.raw, tt.want, answers[0].raw)
				}
			}
			if n := env.rows(t, id); n != 1 {
				t.Errorf("%d rows, want 1", n)
			}
			events, err := env.store.Events(context.Background(), addon.ID(id))
			if err != nil {
				t.Fatal(err)
			}
			if len(events) != wantEvents {
				t.Errorf("%d events, want %d: a duplicate wrote to the audit trail: %+v", len(events), wantEvents, events)
			}
			if tasks := tasksFor(t, env.redis, id); len(tasks) != tt.tasks {
				t.Errorf("tasks %v, want %d", taskTypes(tasks), tt.tasks)
			}
		})
	}
}

func TestProvisionDeprovisioned(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envConfig{})
	id := uuid.NewString()
	r := heroku(http.MethodPost, "/heroku/resources", provisionBody(id))
	if a := serve(t, env.e, r); a.status != http.StatusAccepted {
		t.Fatalf("first provision: %d %s", a.status, a.raw)
	}
	_, err := env.store.Update(context.Background(), addon.ID(id), func(ctx context.Context, a *addon.Addon) error {
		if err := a.Transition(time.Now(), addon.StateDeprovisioning, "test"); err != nil {
			return err
		}
		return a.Transition(time.Now(), addon.StateDeprovisioned, "test")
	})
	if err != nil {
		t.Fatal(err)
	}
	a := serve(t, env.e, r)
	if a.status != http.StatusGone || a.ID != addon.EGONE || !strings.Contains(a.Msg, id) {
		t.Fatalf("answer %d %s, want 410 gone naming the add-on", a.status, a.raw)
	}
	if got := env.stored(t, id); got == nil || got.State != addon.StateDeprovisioned {
		t.Errorf("stored %+v, want it left deprovisioned", got)
	}
}

// TestProvisionRedisDown: Heroku still gets its 202 and the add-on is
// recorded, for the reconciler to enqueue once Redis is back.
func TestProvisionRedisDown(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envConfig{redisDown: true})
	id := uuid.NewString()
	a := serve(t, env.e, heroku(http.MethodPost, "/heroku/resources", provisionBody(id)))
	if a.status != http.StatusAccepted || a.ID != id {
		t.Fatalf("answer %d %s, want 202", a.status, a.raw)
	}
	if got := env.stored(t, id); got == nil || got.State != addon.StateProvisioning {
		t.Fatalf("stored %+v, want a provisioning add-on", got)
	}
	if lines := env.logs.lines("enqueue failed", id); len(lines) != 1 {
		t.Errorf("want the failed enqueue logged once, got %q", lines)
	}
}

// TestProvisionPostgresDown: a store that cannot be reached is a 503 Heroku
// retries, with Retry-After and a JSON body, never a 500 or a hang; both for
// the first request after the database went away (its pooled connections
// are dead) and for later ones (new connections are refused).
func TestProvisionPostgresDown(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envConfig{})
	env.proxy.Cut()

	tests := []struct {
		name  string
		reqID string
	}{
		{name: "pooled connections dropped", reqID: "pg-down-1"},
		{name: "new connections refused", reqID: "pg-down-2"},
	}
	for _, tt := range tests { // in order: the first request meets the dead pool
		t.Run(tt.name, func(t *testing.T) {
			r := heroku(http.MethodPost, "/heroku/resources", provisionBody(uuid.NewString()))
			r.header["X-Request-Id"] = tt.reqID
			a := serve(t, env.e, r)
			if a.status != http.StatusServiceUnavailable || a.ID != addon.EUNAVAILABLE || a.Msg == "" {
				t.Errorf("answer %d %s, want 503 unavailable\nlog:\n%s", a.status, a.raw, env.logs)
			}
			if ra := a.header.Get("Retry-After"); ra == "" || ra == "0" {
				t.Errorf("Retry-After %q, want a positive number of seconds", ra)
			}
			if strings.Contains(a.raw, "127.0.0.1") || strings.Contains(a.raw, "conn") {
				t.Errorf("the answer leaks internal details: %s", a.raw)
			}
			if lines := env.logs.lines("request failed", "request_id="+tt.reqID, "status="); len(lines) != 1 {
				t.Errorf("want the failure logged in full once with its request id, got %q", lines)
			}
		})
	}
}

func taskTypes(tasks []*asynq.TaskInfo) []string {
	var out []string
	for _, t := range tasks {
		out = append(out, t.Type+" "+string(t.ID))
	}
	return out
}

// TestPartnerIDSpelling: Heroku's uuid is read once, at the edge, in any
// case: an upper-case uuid provisions the add-on under its lower-case id
// (the answer says so), and the same add-on is reached by either spelling
// in the path; a path id that is not a uuid names no add-on (404).
func TestPartnerIDSpelling(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envConfig{})
	id := uuid.NewString()
	upper := strings.ToUpper(id)

	a := serve(t, env.e, heroku(http.MethodPost, "/heroku/resources", provisionBody(upper)))
	if a.status != http.StatusAccepted || a.ID != id {
		t.Fatalf("provision with an upper-case uuid = %d %s, want 202 with id %s", a.status, a.raw, id)
	}
	if env.stored(t, id) == nil {
		t.Fatalf("add-on %s not stored under its lower-case id", id)
	}
	if a := serve(t, env.e, heroku(http.MethodPost, "/heroku/resources", provisionBody(id))); a.status != http.StatusAccepted || a.ID != id {
		t.Errorf("repeat in lower case = %d %s, want the first answer", a.status, a.raw)
	}
	if n := env.rows(t, id); n != 1 {
		t.Errorf("%d rows for one add-on in two spellings", n)
	}

	tests := []struct {
		name, method, path, body string
		want                     int
		wantID                   string
	}{
		{"plan change, upper-case path", http.MethodPut, "/heroku/resources/" + upper, `{"plan":"basic"}`, http.StatusAccepted, ""},
		{"plan change, not a uuid", http.MethodPut, "/heroku/resources/not-a-uuid", `{"plan":"basic"}`, http.StatusNotFound, addon.ENOTFOUND},
		{"deprovision, not a uuid", http.MethodDelete, "/heroku/resources/not-a-uuid", "", http.StatusNotFound, addon.ENOTFOUND},
		{"deprovision, upper-case path", http.MethodDelete, "/heroku/resources/" + upper, "", http.StatusNoContent, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := serve(t, env.e, heroku(tt.method, tt.path, tt.body))
			if a.status != tt.want || a.ID != tt.wantID {
				t.Fatalf("%s %s = %d %s, want %d %q", tt.method, tt.path, a.status, a.raw, tt.want, tt.wantID)
			}
		})
	}
	if got := env.stored(t, id); got == nil || got.PendingPlan != "basic" || got.State != addon.StateDeprovisioning {
		t.Errorf("stored %+v, want the plan change recorded and the add-on deprovisioning", got)
	}
}
