package web_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/web"
)

func TestOperatorPagesNeedTheAdminPassword(t *testing.T) {
	t.Parallel()
	c := newCustomer(t, customerConfig{})
	e, _ := bare(t) // no admin password configured: nobody gets in
	for _, path := range []string{"/metrics", web.QueuesPath, web.QueuesPath + "/", web.QueuesPath + "/api/queues", web.QueuesPath + "/static/js/main.5adda2da.chunk.js"} {
		t.Run(path, func(t *testing.T) {
			for _, tt := range []struct {
				name   string
				header map[string]string
			}{
				{"no credentials", nil},
				{"wrong password", admin("wrong")},
				{"wrong user", map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("ops:"+adminPassword))}},
			} {
				p := do(t, c.e, http.MethodGet, path, nil, tt.header)
				if p.status != http.StatusUnauthorized || !strings.Contains(p.header.Get("WWW-Authenticate"), "Basic") {
					t.Errorf("%s: status %d, WWW-Authenticate %q; want 401 with a Basic challenge", tt.name, p.status, p.header.Get("WWW-Authenticate"))
				}
				if strings.Contains(p.body, "kiln_http_requests_total") || strings.Contains(p.body, "<script") {
					t.Errorf("%s: the refusal carries the page", tt.name)
				}
			}
			if p := do(t, c.e, http.MethodGet, path, nil, admin(adminPassword)); p.status != http.StatusOK {
				t.Errorf("with the admin password: %d", p.status)
			}
			if p := do(t, e, http.MethodGet, path, nil, admin("")); p.status != http.StatusUnauthorized && p.status != http.StatusNotFound {
				t.Errorf("with no admin password configured, the empty password got %d", p.status)
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	c := newCustomer(t, customerConfig{})
	a := c.provisioned(t)
	c.provisioned(t)
	ctx := context.Background()
	if _, _, err := c.svc.Provision(ctx, addon.ProvisionRequest{ID: addon.ID(uuid.NewString()), Plan: "test", Grant: &addon.Grant{Code: "x"}}); err != nil {
		t.Fatal(err)
	}
	sess := c.session(t, a.ID)
	do(t, c.e, http.MethodGet, "/dashboard/resources/"+string(a.ID), nil, nil, sess)
	do(t, c.e, http.MethodGet, "/no/such/"+uuid.NewString(), nil, nil)

	p := do(t, c.e, http.MethodGet, "/metrics", nil, admin(adminPassword))
	if p.status != http.StatusOK {
		t.Fatalf("/metrics: %d", p.status)
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(p.body, "\n") {
		lines[l] = true
	}
	for _, want := range []string{
		`kiln_http_requests_total{method="POST",route="/sso/login",status="303"} 1`,
		`kiln_http_requests_total{method="GET",route="/dashboard/resources/:uuid",status="200"} 1`,
		`kiln_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`kiln_http_request_duration_seconds_count{method="GET",route="/dashboard/resources/:uuid"} 1`,
		`kiln_addons{state="provisioned"} 2`,
		`kiln_addons{state="provisioning"} 1`,
		`kiln_addons{state="failed"} 0`,
		// One grant job per provision; no worker runs here to take them.
		`asynq_tasks_enqueued_total{queue="grant",state="pending"} 3`,
		`asynq_up 1`,
	} {
		if !lines[want] {
			t.Errorf("/metrics has no line %q", want)
		}
	}
	if strings.Contains(p.body, string(a.ID)) || strings.Contains(p.body, "/no/such") {
		t.Errorf("/metrics labels carry raw paths")
	}
}

func TestQueueDashboard(t *testing.T) {
	t.Parallel()
	c := newCustomer(t, customerConfig{})
	if err := c.queue.Enqueue(context.Background(), addon.JobGrant, addon.ID(uuid.NewString())); err != nil {
		t.Fatal(err)
	}
	auth := admin(adminPassword)

	index := do(t, c.e, http.MethodGet, web.QueuesPath, nil, auth)
	if index.status != http.StatusOK || !strings.Contains(index.body, `<div id="root">`) {
		t.Fatalf("index: %d %s", index.status, index.body)
	}
	if csp := index.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	refs := regexp.MustCompile(`(?:src|href)\s*=\s*"([^"]*)"`).FindAllStringSubmatch(index.body, -1)
	if len(refs) < 3 {
		t.Fatalf("index references %d resources; the page changed shape", len(refs))
	}
	for _, ref := range refs {
		u, err := url.Parse(ref[1])
		if err != nil || u.Host != "" || !strings.HasPrefix(u.Path, web.QueuesPath+"/") {
			t.Errorf("index references %q: not a local asset under %s", ref[1], web.QueuesPath)
			continue
		}
		asset := do(t, c.e, http.MethodGet, ref[1], nil, auth)
		if asset.status != http.StatusOK {
			t.Errorf("%s: %d", ref[1], asset.status)
		}
		if strings.HasSuffix(u.Path, ".js") {
			checkScript(t, u.Path, asset.body)
		}
	}
	if strings.Contains(index.body, "fonts.googleapis.com") || strings.Contains(index.body, "https://") {
		t.Errorf("index still refers to an outside host")
	}

	api := do(t, c.e, http.MethodGet, web.QueuesPath+"/api/queues", nil, auth)
	var queues struct {
		Queues []struct {
			Queue string `json:"queue"`
		} `json:"queues"`
	}
	if err := json.Unmarshal([]byte(api.body), &queues); err != nil || len(queues.Queues) == 0 || queues.Queues[0].Queue != "grant" {
		t.Errorf("api/queues: %d %s", api.status, api.body)
	}

	cross := map[string]string{"Authorization": auth["Authorization"], "Origin": "https://evil.example.com"}
	if p := do(t, c.e, http.MethodPost, web.QueuesPath+"/api/queues/grant:pause", url.Values{}, cross); p.status != http.StatusForbidden {
		t.Errorf("cross-site pause: %d, want 403", p.status)
	}
	paused := do(t, c.e, http.MethodPost, web.QueuesPath+"/api/queues/grant:pause", url.Values{}, auth)
	if paused.status >= 300 {
		t.Errorf("pause with the admin password: %d %s", paused.status, paused.body)
	}
}

// scriptHosts are the outside hosts asynqmon's bundled JavaScript names as
// text: XML namespaces, and links in error messages and help texts that a
// browser never fetches by itself. Anything else would be a new outside
// dependency that TestQueueDashboardInBrowser's network log must then
// confirm is not loaded.
var scriptHosts = map[string]bool{
	"www.w3.org": true, "reactjs.org": true, "fb.me": true, "redux.js.org": true,
	"material-ui.com": true, "github.com": true, "bit.ly": true, "axios-http.com": true,
	"redis.io": true,
}

func checkScript(tb testing.TB, path, body string) {
	tb.Helper()
	for _, m := range regexp.MustCompile(`https?://([a-zA-Z0-9.-]+)`).FindAllStringSubmatch(body, -1) {
		if !scriptHosts[m[1]] {
			tb.Errorf("%s names outside host %s", path, m[1])
		}
	}
	for _, bad := range []string{"fonts.googleapis", "fonts.gstatic"} {
		if strings.Contains(body, bad) {
			tb.Errorf("%s refers to %s", path, bad)
		}
	}
}
