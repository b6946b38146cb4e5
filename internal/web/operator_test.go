package web_test

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/herokusim"
	"github.com/kiln-dev/kiln/internal/web"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// TestOperatorVersioning: the version is required in Accept, as on
// Heroku's API: none is a 400 missing_version, an unknown one a 406.
func TestOperatorVersioning(t *testing.T) {
	e := newOpEnv(t, opConfig{})
	tests := []struct {
		name   string
		accept string
		status int
		id     string
	}{
		{"no Accept", "", 400, "missing_version"},
		{"plain JSON", "application/json", 400, "missing_version"},
		{"anything", "*/*", 400, "missing_version"},
		{"Kiln's type without a version", "application/vnd.kiln+json", 400, "missing_version"},
		{"Heroku's type", "application/vnd.heroku+json; version=3", 400, "missing_version"},
		{"unknown version", "application/vnd.kiln+json; version=2", 406, "not_acceptable"},
		{"version 1", opAccept, 200, ""},
		{"version 1, quoted, among others", `application/json, application/vnd.kiln+json; version="1"; q=0.9`, 200, ""},
		{"version 2 and 1", "application/vnd.kiln+json; version=2, application/vnd.kiln+json; version=1", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := e.do(t, opReq{path: "/admin/api/plans", header: map[string]string{"Accept": tt.accept}, invalid: tt.status != 200})
			a.want(t, tt.status)
			if tt.id != "" {
				a.want(t, tt.status, tt.id)
				if !strings.Contains(a.str("message"), "application/vnd.kiln+json; version=1") {
					t.Errorf("message %q does not show the header to send", a.str("message"))
				}
			}
		})
	}
}

// TestOperatorAuth: the admin password as a Bearer token or Basic admin:…;
// anything else is 401 with both challenges.
func TestOperatorAuth(t *testing.T) {
	e := newOpEnv(t, opConfig{})
	tests := []struct {
		name   string
		r      opReq
		status int
	}{
		{"bearer", opReq{}, 200},
		{"bearer, any case", opReq{header: map[string]string{"Authorization": "bearer " + opPassword}}, 200},
		{"basic admin", opReq{basic: []string{"admin", opPassword}}, 200},
		{"none", opReq{header: map[string]string{"Authorization": ""}, invalid: true}, 401},
		{"wrong bearer", opReq{header: map[string]string{"Authorization": "Bearer nope"}, invalid: true}, 401},
		{"bearer prefix of the password", opReq{header: map[string]string{"Authorization": "Bearer " + opPassword[:10]}, invalid: true}, 401},
		{"basic, another user", opReq{basic: []string{"root", opPassword}, invalid: true}, 401},
		{"basic, wrong password", opReq{basic: []string{"admin", "nope"}, invalid: true}, 401},
		{"the partner password", opReq{basic: []string{"kiln-test", "partner-password"}, invalid: true}, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.r.path = "/admin/api/resources"
			a := e.do(t, tt.r).want(t, tt.status)
			if tt.status == 401 {
				a.want(t, 401, "unauthorized")
				if ch := a.header.Values("WWW-Authenticate"); len(ch) != 2 {
					t.Errorf("WWW-Authenticate = %q, want the Bearer and Basic challenges", ch)
				}
			}
		})
	}
	t.Run("no admin password admits nobody", func(t *testing.T) {
		h := web.New(web.Options{Service: e.svc})
		opServe(t, h, e.spec, opReq{path: "/admin/api/plans", header: map[string]string{"Authorization": "Bearer "}, invalid: true}).want(t, 401, "unauthorized")
		opServe(t, h, e.spec, opReq{path: "/admin/api/plans", basic: []string{"admin", ""}, invalid: true}).want(t, 401, "unauthorized")
	})
}

// TestOperatorAnswerHeaders: Request-Id and RateLimit-Remaining on every
// answer (success, error, 304, unknown routes), minified JSON unless
// ?pretty=true, errors with a url to their documentation.
func TestOperatorAnswerHeaders(t *testing.T) {
	e := newOpEnv(t, opConfig{})
	a := e.seed(t, "acme-db", "test", addon.StateProvisioned)
	tests := []struct {
		name   string
		r      opReq
		status int
		id     string
	}{
		{"success", opReq{path: "/admin/api/resources/" + string(a.ID)}, 200, ""},
		{"not found", opReq{path: "/admin/api/resources/" + uuid.NewString()}, 404, "not_found"},
		{"unknown name", opReq{path: "/admin/api/resources/no-such-addon"}, 404, "not_found"},
		{"unknown route", opReq{path: "/admin/api/apps", invalid: true}, 404, "not_found"},
		{"the API root", opReq{path: "/admin/api", invalid: true}, 404, "not_found"},
		{"wrong method", opReq{method: "DELETE", path: "/admin/api/resources/" + string(a.ID), invalid: true}, 405, "method_not_allowed"},
		{"wrong method on an action", opReq{method: "GET", path: "/admin/api/resources/" + string(a.ID) + "/actions/retry", invalid: true}, 405, "method_not_allowed"},
		{"unauthenticated", opReq{path: "/admin/api/plans", header: map[string]string{"Authorization": ""}, invalid: true}, 401, "unauthorized"},
		{"no version", opReq{path: "/admin/api/plans", header: map[string]string{"Accept": ""}, invalid: true}, 400, "missing_version"},
		{"body over the cap", opReq{method: "POST", path: "/admin/api/resources/" + string(a.ID) + "/actions/deprovision",
			body: `{"reason": "` + strings.Repeat("x", int(web.DefaultBodyLimit)) + `"}`, invalid: true}, 413, "too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.r.header = merge(tt.r.header, map[string]string{"Request-Id": "req-" + strconv.Itoa(len(tt.name))})
			got := e.do(t, tt.r).want(t, tt.status)
			if tt.id != "" {
				got.want(t, tt.status, tt.id)
				if want := web.OperatorDocsURL + "#error-" + tt.id; got.str("url") != want {
					t.Errorf("url = %q, want %q", got.str("url"), want)
				}
			}
			if rid := got.header.Get("Request-Id"); rid != "req-"+strconv.Itoa(len(tt.name)) {
				t.Errorf("Request-Id = %q, want the caller's", rid)
			}
			if _, err := strconv.Atoi(got.header.Get("RateLimit-Remaining")); err != nil {
				t.Errorf("RateLimit-Remaining = %q", got.header.Get("RateLimit-Remaining"))
			}
			if !compact(got.body) {
				t.Errorf("answer is not minified: %s", got.body)
			}
		})
	}
	t.Run("a fresh Request-Id when none is sent", func(t *testing.T) {
		got := e.do(t, opReq{path: "/admin/api/plans"}).want(t, 200)
		if !uuidRE.MatchString(got.header.Get("Request-Id")) {
			t.Errorf("Request-Id = %q, want a uuid", got.header.Get("Request-Id"))
		}
	})
	t.Run("pretty", func(t *testing.T) {
		for _, path := range []string{"/admin/api/resources/" + string(a.ID) + "?pretty=true", "/admin/api/nothing?pretty=true"} {
			got := e.do(t, opReq{path: path, invalid: strings.Contains(path, "nothing")})
			if compact(got.body) || !strings.Contains(string(got.body), "\n  \"") {
				t.Errorf("%s: ?pretty=true answer is not indented: %s", path, got.body)
			}
		}
		if got := e.do(t, opReq{path: "/admin/api/resources/" + string(a.ID) + "?pretty=false"}); !compact(got.body) {
			t.Errorf("?pretty=false answer is not minified: %s", got.body)
		}
	})
}

func merge(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range []map[string]string{b, a} {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// TestOperatorResourceRepresentation: ids and timestamps in the guide's
// formats, nested plan, config var names but never a secret.
func TestOperatorResourceRepresentation(t *testing.T) {
	e := newOpEnv(t, opConfig{})
	a := e.provisioned(t, "acme-inc-primary-database")
	got := e.do(t, opReq{path: "/admin/api/resources/" + string(a.ID)}).want(t, 200)
	r := opMap(got.v)
	if r["id"] != string(a.ID) || !uuidRE.MatchString(opString(r["id"])) {
		t.Errorf("id = %v, want %s in lower-case 8-4-4-4-12", r["id"], a.ID)
	}
	stampRE := regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$`)
	for _, k := range []string{"created_at", "updated_at"} {
		if !stampRE.MatchString(opString(r[k])) {
			t.Errorf("%s = %v, want UTC ISO 8601 like 2012-01-01T12:00:00Z", k, r[k])
		}
	}
	if want := a.CreatedAt.UTC().Format("2006-01-02T15:04:05Z"); r["created_at"] != want {
		t.Errorf("created_at = %v, want %s", r["created_at"], want)
	}
	if p := opMap(r["plan"]); p["name"] != "test" || !uuidRE.MatchString(opString(p["id"])) {
		t.Errorf("plan = %v, want {id, name: test}", r["plan"])
	}
	if names := fmt.Sprint(r["config_vars"]); names != "[KILN_URL]" {
		t.Errorf("config_vars = %s, want [KILN_URL]", names)
	}
	if r["platform_access"] != true || r["state"] != "provisioned" {
		t.Errorf("state %v platform_access %v, want provisioned and true", r["state"], r["platform_access"])
	}
	stored := e.get(t, a.ID)
	secrets := []string{stored.Vars["URL"], stored.Tokens.Access, stored.Tokens.Refresh, "secret-log-input", "secret-drain-token"}
	for _, s := range secrets {
		if s != "" && strings.Contains(string(got.body), s) {
			t.Errorf("the representation shows a secret (%.12s…): %s", s, got.body)
		}
	}
	// The same add-on by name, by upper-case id, and in a listing: the
	// same representation.
	for _, path := range []string{"/admin/api/resources/acme-inc-primary-database", "/admin/api/resources/" + strings.ToUpper(string(a.ID))} {
		if other := e.do(t, opReq{path: path}).want(t, 200); string(other.body) != string(got.body) {
			t.Errorf("%s differs:\n%s\n%s", path, other.body, got.body)
		}
	}
	list := e.do(t, opReq{path: "/admin/api/resources"}).want(t, 200)
	if len(list.list()) != 1 || fmt.Sprint(list.list()[0]) != fmt.Sprint(r) {
		t.Errorf("listing = %s, want [the same add-on]", list.body)
	}
}

// TestOperatorLookupByName: names resolve to the live add-on; two live
// add-ons with one name must be told apart by id.
func TestOperatorLookupByName(t *testing.T) {
	e := newOpEnv(t, opConfig{})
	old := e.seed(t, "reused", "test", addon.StateDeprovisioned)
	live := e.seed(t, "reused", "test", addon.StateProvisioned)
	e.seed(t, "twin", "test", addon.StateProvisioned)
	e.seed(t, "twin", "test", addon.StateFailed)
	if got := e.do(t, opReq{path: "/admin/api/resources/reused"}).want(t, 200); got.str("id") != string(live.ID) {
		t.Errorf("reused = %s, want the live add-on %s (not %s)", got.str("id"), live.ID, old.ID)
	}
	e.do(t, opReq{path: "/admin/api/resources/twin"}).want(t, 409, "conflict")
	e.do(t, opReq{path: "/admin/api/resources/twin/events"}).want(t, 409, "conflict")
}

// TestOperatorListing: filters, keyset pagination with Range / Next-Range
// (206 while more remain, 200 on the last page), and refused ranges.
func TestOperatorListing(t *testing.T) {
	e := newOpEnv(t, opConfig{})
	var all []*addon.Addon
	for i := range 5 {
		all = append(all, e.seed(t, fmt.Sprintf("acme-%d", i), "test", addon.StateProvisioned))
	}
	failed := e.seed(t, "zeta-db", "basic", addon.StateFailed)
	all = append(all, failed)
	byID := ids(all)
	sort.Strings(byID)

	t.Run("everything fits: 200", func(t *testing.T) {
		got := e.do(t, opReq{path: "/admin/api/resources"}).want(t, 200)
		if got.header.Get("Next-Range") != "" {
			t.Errorf("Next-Range %q on a complete listing", got.header.Get("Next-Range"))
		}
		if got.header.Get("Accept-Ranges") != "id, created_at" {
			t.Errorf("Accept-Ranges = %q", got.header.Get("Accept-Ranges"))
		}
		if want := "id " + byID[0] + ".." + byID[len(byID)-1]; got.header.Get("Content-Range") != want {
			t.Errorf("Content-Range = %q, want %q", got.header.Get("Content-Range"), want)
		}
		if !slices.Equal(listIDs(got), byID) {
			t.Errorf("ids = %v, want %v (by id)", listIDs(got), byID)
		}
	})
	t.Run("pages by id", func(t *testing.T) {
		pages := e.pages(t, "/admin/api/resources", "id ..; max=4")
		if len(pages) != 2 || pages[0].status != 206 || pages[1].status != 200 {
			t.Fatalf("statuses %v, want [206 200]", statuses(pages))
		}
		if want := "id ]" + byID[3] + "..; max=4"; pages[0].header.Get("Next-Range") != want {
			t.Errorf("Next-Range = %q, want %q", pages[0].header.Get("Next-Range"), want)
		}
		if got := concatIDs(pages); !slices.Equal(got, byID) {
			t.Errorf("ids = %v, want %v", got, byID)
		}
	})
	t.Run("pages by created_at, newest first", func(t *testing.T) {
		pages := e.pages(t, "/admin/api/resources", "created_at ..; max=2, order=desc")
		if len(pages) != 3 || statuses(pages) != "[206 206 200]" {
			t.Fatalf("statuses %v, want [206 206 200]", statuses(pages))
		}
		if nr := pages[0].header.Get("Next-Range"); !strings.HasPrefix(nr, "created_at ]") || !strings.HasSuffix(nr, "..; max=2, order=desc") {
			t.Errorf("Next-Range = %q", nr)
		}
		want := ids(all)
		slices.Reverse(want) // seeded one after another
		if got := concatIDs(pages); !slices.Equal(got, want) {
			t.Errorf("ids = %v, want %v", got, want)
		}
	})
	t.Run("a new add-on between pages is neither skipped nor repeated", func(t *testing.T) {
		first := e.do(t, opReq{path: "/admin/api/resources", header: map[string]string{"Range": "created_at ..; max=3"}}).want(t, 206)
		late := e.seed(t, "late", "test", addon.StateProvisioning)
		rest := e.pages(t, "/admin/api/resources", first.header.Get("Next-Range"))
		got := append(listIDs(first), concatIDs(rest)...)
		if want := append(ids(all), string(late.ID)); !slices.Equal(got, want) {
			t.Errorf("ids = %v, want %v", got, want)
		}
	})
	t.Run("filters", func(t *testing.T) {
		// The app filter matches the app's name as Heroku reported it
		// (the sync or a webhook), not the add-on's name.
		if _, err := e.db.UpdateLink(context.Background(), failed.ID, func(l *addon.Link) error {
			l.AppID, l.AppName = "app-id-1", "zeta-shop"
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			query string
			want  []string
		}{
			{"state=failed", []string{string(failed.ID)}},
			{"plan=basic", []string{string(failed.ID)}},
			{"name=acme-2", []string{string(all[2].ID)}},
			{"app=ZETA-shop", []string{string(failed.ID)}},
			{"app=ZETA", nil},
			{"state=failed&plan=test", nil},
			{"state=deprovisioned", nil},
		}
		for _, tt := range tests {
			got := e.do(t, opReq{path: "/admin/api/resources?" + tt.query}).want(t, 200)
			if !slices.Equal(listIDs(got), tt.want) {
				t.Errorf("?%s = %v, want %v", tt.query, listIDs(got), tt.want)
			}
			if len(tt.want) == 0 && (string(got.body) != "[]" || got.header.Get("Content-Range") != "") {
				t.Errorf("?%s: body %s Content-Range %q, want [] and none", tt.query, got.body, got.header.Get("Content-Range"))
			}
		}
	})
	t.Run("refused filters", func(t *testing.T) {
		e.do(t, opReq{path: "/admin/api/resources?state=stuck", invalid: true}).want(t, 422, "invalid")
		e.do(t, opReq{path: "/admin/api/resources?stat=failed", invalid: true}).want(t, 400, "bad_request")
		e.do(t, opReq{path: "/admin/api/resources?plan=a&plan=b", invalid: true}).want(t, 400, "bad_request")
	})
	t.Run("refused ranges", func(t *testing.T) {
		for _, r := range []string{
			"name ..", "id ..; max=0", "id ..; max=1001", "id ..; max=ten", "id nope..", "id ..; order=sideways",
			"id ..; limit=5", "id " + byID[0] + ".." + byID[1], "created_at yesterday..", "id " + byID[0],
		} {
			got := e.do(t, opReq{path: "/admin/api/resources", header: map[string]string{"Range": r}})
			if got.status != 416 || got.str("id") != "requested_range_not_satisfiable" {
				t.Errorf("Range %q: %d %s, want 416 requested_range_not_satisfiable", r, got.status, got.body)
			}
		}
	})
}

// pages follows Next-Range from the first Range until a 200.
func (e *opEnv) pages(tb testing.TB, path, first string) []opAns {
	tb.Helper()
	var out []opAns
	r := first
	for range 20 {
		a := e.do(tb, opReq{path: path, header: map[string]string{"Range": r}})
		if a.status != 200 && a.status != 206 {
			tb.Fatalf("Range %q: %d %s", r, a.status, a.body)
		}
		out = append(out, a)
		if a.status == 200 {
			if a.header.Get("Next-Range") != "" {
				tb.Errorf("a 200 with Next-Range %q", a.header.Get("Next-Range"))
			}
			return out
		}
		r = a.header.Get("Next-Range")
	}
	tb.Fatal("pagination did not end")
	return nil
}

func ids(as []*addon.Addon) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = string(a.ID)
	}
	return out
}

func listIDs(a opAns) []string {
	var out []string
	for _, r := range a.list() {
		out = append(out, opString(r["id"]))
	}
	return out
}

func concatIDs(pages []opAns) []string {
	var out []string
	for _, p := range pages {
		out = append(out, listIDs(p)...)
	}
	return out
}

func statuses(pages []opAns) string {
	var s []int
	for _, p := range pages {
		s = append(s, p.status)
	}
	return fmt.Sprint(s)
}

// TestOperatorETag: If-None-Match with the ETag of the representation gets
// 304 (no body, the same headers), until the resource changes.
func TestOperatorETag(t *testing.T) {
	e := newOpEnv(t, opConfig{})
	a := e.seed(t, "acme-db", "test", addon.StateFailed)
	paths := []string{
		"/admin/api/resources/" + string(a.ID),
		"/admin/api/resources/" + string(a.ID) + "/events",
		"/admin/api/resources?state=failed",
		"/admin/api/plans",
		"/admin/api/schema",
	}
	for _, path := range paths {
		t.Run(path, func(t *testing.T) {
			first := e.do(t, opReq{path: path}).want(t, 200)
			etag := first.header.Get("ETag")
			for _, inm := range []string{etag, `"other", ` + etag, "W/" + etag, "*"} {
				got := e.do(t, opReq{path: path, header: map[string]string{"If-None-Match": inm}}).want(t, 304)
				if len(got.body) != 0 || got.header.Get("ETag") != etag {
					t.Errorf("If-None-Match %s: body %q ETag %q, want none and %s", inm, got.body, got.header.Get("ETag"), etag)
				}
			}
			e.do(t, opReq{path: path, header: map[string]string{"If-None-Match": `"other"`}}).want(t, 200)
			if pretty := e.do(t, opReq{path: path + sep(path) + "pretty=true"}).want(t, 200); pretty.header.Get("ETag") == etag {
				t.Error("the indented representation has the minified one's ETag")
			}
		})
	}
	t.Run("a change makes a new ETag", func(t *testing.T) {
		path := "/admin/api/resources/" + string(a.ID)
		etag := e.do(t, opReq{path: path}).header.Get("ETag")
		e.do(t, opReq{method: "POST", path: path + "/actions/retry"}).want(t, 202)
		got := e.do(t, opReq{path: path, header: map[string]string{"If-None-Match": etag}}).want(t, 200)
		if got.header.Get("ETag") == etag || got.str("state") != "provisioning" {
			t.Errorf("after a retry: ETag %s state %s, want a new ETag and provisioning", got.header.Get("ETag"), got.str("state"))
		}
	})
	t.Run("actions ignore If-None-Match", func(t *testing.T) {
		path := "/admin/api/resources/" + string(a.ID) + "/actions/deprovision"
		e.do(t, opReq{method: "POST", path: path, header: map[string]string{"If-None-Match": "*"}}).want(t, 202)
	})
}

func sep(path string) string {
	if strings.Contains(path, "?") {
		return "&"
	}
	return "?"
}

// TestOperatorRetryProvisions: an add-on that failed (Heroku refused its
// config once) is retried through the API and the real worker then
// provisions it on Heroku.
func TestOperatorRetryProvisions(t *testing.T) {
	e := newOpEnv(t, opConfig{worker: true})
	id := uuid.NewString()
	grant := e.sim.NewAddon(id)
	e.sim.Inject(herokusim.Fault{Kind: herokusim.KindConfig, AddonID: id, Times: 1, Status: http.StatusUnprocessableEntity, Message: "Config vars refused."})
	if _, _, err := e.svc.Provision(context.Background(), addon.ProvisionRequest{
		ID: addon.ID(id), Name: "acme-retry", Plan: "test", Grant: &grant, CallbackURL: "https://api.heroku.com/addons/" + id,
	}); err != nil {
		t.Fatal(err)
	}
	e.waitState(t, addon.ID(id), addon.StateFailed)
	path := "/admin/api/resources/" + id

	got := e.do(t, opReq{path: path}).want(t, 200)
	if got.str("state") != "failed" || !strings.Contains(got.str("reason"), "Config vars refused") {
		t.Fatalf("before the retry: %s", got.body)
	}
	got = e.do(t, opReq{method: "POST", path: path + "/actions/retry"}).want(t, 202)
	if got.str("state") != "provisioning" {
		t.Errorf("the retry answered state %q, want provisioning", got.str("state"))
	}
	e.waitState(t, addon.ID(id), addon.StateProvisioned)
	got = e.do(t, opReq{path: path}).want(t, 200)
	if got.str("state") != "provisioned" || opMap(got.v)["steps"].(map[string]any)["provisioned_at"] == nil {
		t.Errorf("after the retry: %s", got.body)
	}
	if h, _ := e.sim.Addon(id); h.State != "provisioned" || h.Config["KILN_URL"] == "" {
		t.Errorf("Heroku sees %+v, want provisioned with KILN_URL", h)
	}
	want := []string{"config Unprocessable Entity", "config OK", "provision OK"}
	if calls := e.opCalls(addon.ID(id), "config", "provision"); !slices.Equal(calls, want) {
		t.Errorf("calls to Heroku = %v, want %v", calls, want)
	}
	events := e.do(t, opReq{path: path + "/events"}).want(t, 200).list()
	var messages []string
	for _, ev := range events {
		messages = append(messages, opString(ev["message"]))
	}
	if !slices.Contains(messages, "retried by an operator") {
		t.Errorf("events %q do not record the retry", messages)
	}
	// Only failed add-ons can be retried, and only those Kiln can reach.
	e.do(t, opReq{method: "POST", path: path + "/actions/retry"}).want(t, 409, "conflict")
	sync := e.seed(t, "acme-sync", "test", addon.StateFailed)
	if _, err := e.db.Update(context.Background(), sync.ID, func(_ context.Context, a *addon.Addon) error { a.Grant = nil; return nil }); err != nil {
		t.Fatal(err)
	}
	e.do(t, opReq{method: "POST", path: "/admin/api/resources/" + string(sync.ID) + "/actions/retry"}).want(t, 422, "invalid")
	if e.get(t, sync.ID).State != addon.StateFailed {
		t.Error("a refused retry changed the add-on")
	}
	e.do(t, opReq{method: "POST", path: "/admin/api/resources/" + uuid.NewString() + "/actions/retry"}).want(t, 404, "not_found")
}

// TestOperatorRotateCredentials: rotation replaces the credentials and the
// new config reaches the app through the simulator.
func TestOperatorRotateCredentials(t *testing.T) {
	e := newOpEnv(t, opConfig{worker: true})
	a := e.provisioned(t, "acme-rotate")
	before, _ := e.sim.Addon(string(a.ID))
	got := e.do(t, opReq{method: "POST", path: "/admin/api/resources/" + string(a.ID) + "/actions/rotate-credentials"}).want(t, 200)
	if got.str("state") != "provisioned" {
		t.Errorf("state = %q after rotation", got.str("state"))
	}
	after, _ := e.sim.Addon(string(a.ID))
	stored := e.get(t, a.ID)
	if after.Config["KILN_URL"] == before.Config["KILN_URL"] || after.Config["KILN_URL"] != stored.Vars["URL"] {
		t.Errorf("Heroku's KILN_URL went from %q to %q; want the new URL %q", before.Config["KILN_URL"], after.Config["KILN_URL"], stored.Vars["URL"])
	}
	if strings.Contains(string(got.body), stored.Vars["URL"]) {
		t.Error("the answer shows the new credentials")
	}
	if calls := e.opCalls(a.ID, "config"); len(calls) != 2 || calls[1] != "config OK" {
		t.Errorf("config calls = %v, want the provisioning push and the rotation push", calls)
	}

	t.Run("refused", func(t *testing.T) {
		failed := e.seed(t, "acme-failed", "test", addon.StateFailed)
		e.do(t, opReq{method: "POST", path: "/admin/api/resources/" + string(failed.ID) + "/actions/rotate-credentials"}).want(t, 409, "conflict")
		// Provisioned without an OAuth grant: no way to push, so nothing
		// may be rotated.
		sync := e.seed(t, "acme-sync", "test", addon.StateProvisioned)
		e.do(t, opReq{method: "POST", path: "/admin/api/resources/" + string(sync.ID) + "/actions/rotate-credentials"}).want(t, 422, "invalid")
	})
	t.Run("Heroku down: 503, retryable", func(t *testing.T) {
		e.sim.Inject(herokusim.Fault{Kind: herokusim.KindConfig, AddonID: string(a.ID), Times: 3, Status: 503})
		got := e.do(t, opReq{method: "POST", path: "/admin/api/resources/" + string(a.ID) + "/actions/rotate-credentials"}).want(t, 503, "unavailable")
		if !strings.Contains(got.str("message"), "retrying the push in the background") {
			t.Errorf("message %q does not say the credentials changed and the push is retried", got.str("message"))
		}
		e.sim.ClearFaults()
		// The push job delivers the new credentials without another rotation.
		deadline := time.Now().Add(30 * time.Second)
		for {
			h, _ := e.sim.Addon(string(a.ID))
			stored := e.get(t, a.ID)
			if h.Config["KILN_URL"] == stored.Vars["URL"] && !stored.ConfigPushedAt.IsZero() {
				break // pushed, and the push recorded
			}
			if time.Now().After(deadline) {
				t.Fatalf("Heroku never received the rotated credentials; log:\n%s", e.logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// TestOperatorForceDeprovision: the reason goes into the audit trail, the
// deprovision job is queued, Heroku is not told, repeats are idempotent and
// a finished deprovision is 410.
func TestOperatorForceDeprovision(t *testing.T) {
	e := newOpEnv(t, opConfig{})
	a := e.provisioned(t, "acme-abuse")
	path := "/admin/api/resources/" + string(a.ID) + "/actions/deprovision"

	t.Run("refused bodies", func(t *testing.T) {
		e.do(t, opReq{method: "POST", path: path, body: `{"reson": "typo"}`, invalid: true}).want(t, 422, "invalid")
		e.do(t, opReq{method: "POST", path: path, body: `{"reason": 5}`, invalid: true}).want(t, 422, "invalid")
		e.do(t, opReq{method: "POST", path: path, body: `not json`, invalid: true}).want(t, 400, "bad_request")
		e.do(t, opReq{method: "POST", path: path, body: `{"reason": "` + strings.Repeat("x", 501) + `"}`, invalid: true}).want(t, 422, "invalid")
		if e.get(t, a.ID).State != addon.StateProvisioned {
			t.Fatal("a refused request changed the add-on")
		}
	})
	got := e.do(t, opReq{method: "POST", path: path, body: `{"reason": "abuse report #1234"}`}).want(t, 202)
	if got.str("state") != "deprovisioning" || got.str("reason") != "forced by an operator: abuse report #1234" {
		t.Errorf("answer: state %q reason %q", got.str("state"), got.str("reason"))
	}
	if tasks := tasksFor(t, e.redis, string(a.ID)); !slices.ContainsFunc(tasks, func(ti *asynq.TaskInfo) bool { return ti.Type == string(addon.JobDeprovision) }) {
		t.Errorf("no deprovision job queued: %v", taskTypes(tasks))
	}
	// A repeat (no body) while the job has not run: the same 202.
	e.do(t, opReq{method: "POST", path: path}).want(t, 202)

	if err := e.svc.DeprovisionJob(context.Background(), a.ID); err != nil {
		t.Fatalf("DeprovisionJob: %v", err)
	}
	e.do(t, opReq{method: "POST", path: path}).want(t, 410, "gone")
	got = e.do(t, opReq{path: "/admin/api/resources/" + string(a.ID)}).want(t, 200)
	if got.str("state") != "deprovisioned" || len(opSlice(opMap(got.v)["config_vars"])) != 0 || opMap(got.v)["platform_access"] != false {
		t.Errorf("after the job: %s", got.body)
	}
	if calls := e.opCalls(a.ID, "deprovision"); len(calls) != 0 {
		t.Errorf("Heroku was told: %v", calls)
	}
	var kinds []string
	for _, ev := range e.do(t, opReq{path: "/admin/api/resources/" + string(a.ID) + "/events"}).want(t, 200).list() {
		kinds = append(kinds, opString(ev["state"])+": "+opString(ev["message"]))
		if !uuidRE.MatchString(opString(ev["id"])) || opMap(ev["resource"])["id"] != string(a.ID) {
			t.Errorf("event %v: want a uuid id and the add-on nested", ev)
		}
	}
	want := []string{"deprovisioning: forced by an operator: abuse report #1234", "deprovisioned: resource destroyed"}
	if len(kinds) < 2 || !slices.Equal(kinds[len(kinds)-2:], want) {
		t.Errorf("audit trail ends %q, want %q", kinds, want)
	}
	// Heroku's own DELETE, when it comes, is answered as done.
	if err := e.svc.Deprovision(context.Background(), a.ID); addon.ErrorCode(err) != addon.EGONE {
		t.Errorf("Heroku's later deprovision: %v, want EGONE (410)", err)
	}
}

// TestOperatorCrossSite: a browser holding the admin password (cached
// after /metrics or /admin/queues) cannot be made by another site to act
// on an add-on: a state-changing call it sends for another site is 403
// forbidden in the operator API's error shape, and the add-on is left
// alone. Scripts (no browser headers), the same origin and reads pass.
func TestOperatorCrossSite(t *testing.T) {
	e := newOpEnv(t, opConfig{})
	tests := []struct {
		name   string
		method string
		header map[string]string
		status int
	}{
		{"cross-site fetch", "POST", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"same-site fetch", "POST", map[string]string{"Sec-Fetch-Site": "same-site"}, 403},
		{"another origin", "POST", map[string]string{"Origin": "https://evil.example"}, 403},
		{"another origin, same-origin claimed", "POST", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"}, 403},
		{"unreadable origin", "POST", map[string]string{"Origin": "%%"}, 403},
		{"script, no browser headers", "POST", nil, 202},
		{"same origin", "POST", map[string]string{"Origin": "http://example.com", "Sec-Fetch-Site": "same-origin"}, 202},
		{"typed by the user", "POST", map[string]string{"Sec-Fetch-Site": "none"}, 202},
		{"cross-site read", "GET", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := e.seed(t, "acme-csrf", "test", addon.StateFailed)
			path := "/admin/api/resources/" + string(a.ID)
			if tt.method == "POST" {
				path += "/actions/retry"
			}
			// The browser sends the Basic credentials it cached.
			got := e.do(t, opReq{method: tt.method, path: path, basic: []string{"admin", opPassword}, header: tt.header}).want(t, tt.status)
			state := e.get(t, a.ID).State
			if tt.status != 403 {
				if tt.method == "POST" && state != addon.StateProvisioning {
					t.Errorf("an admitted retry left the add-on %s", state)
				}
				return
			}
			got.want(t, 403, "forbidden")
			if want := web.OperatorDocsURL + "#error-forbidden"; got.str("url") != want {
				t.Errorf("url = %q, want %q", got.str("url"), want)
			}
			if _, err := strconv.Atoi(got.header.Get("RateLimit-Remaining")); err != nil {
				t.Errorf("RateLimit-Remaining = %q", got.header.Get("RateLimit-Remaining"))
			}
			if state != addon.StateFailed {
				t.Errorf("a refused cross-site retry left the add-on %s", state)
			}
		})
	}
	// Every state-changing route is guarded, not only retry.
	a := e.provisioned(t, "acme-csrf-actions")
	for _, action := range []string{"retry", "rotate-credentials", "deprovision"} {
		e.do(t, opReq{method: "POST", path: "/admin/api/resources/" + string(a.ID) + "/actions/" + action,
			basic: []string{"admin", opPassword}, header: map[string]string{"Sec-Fetch-Site": "cross-site"}}).want(t, 403, "forbidden")
	}
	if got := e.get(t, a.ID); got.State != addon.StateProvisioned || len(e.opCalls(a.ID, "config")) != 1 {
		t.Errorf("after refused cross-site actions: state %s, config pushes %v", got.State, e.opCalls(a.ID, "config"))
	}
}

// TestOperatorPlans: the driver's catalog, sorted, with stable ids.
func TestOperatorPlans(t *testing.T) {
	e := newOpEnv(t, opConfig{})
	got := e.do(t, opReq{path: "/admin/api/plans"}).want(t, 200)
	want := e.svc.Catalog().Slugs()
	var names []string
	for _, p := range got.list() {
		names = append(names, opString(p["name"]))
		if opMap(p["driver"])["name"] != "account" {
			t.Errorf("plan %v: driver, want account", p)
		}
	}
	if !slices.Equal(names, want) {
		t.Errorf("plans = %v, want %v", names, want)
	}
	a := e.seed(t, "acme", "test", addon.StateProvisioned)
	res := e.do(t, opReq{path: "/admin/api/resources/" + string(a.ID)}).want(t, 200)
	for _, p := range got.list() {
		if p["name"] == "test" && p["id"] != opMap(opMap(res.v)["plan"])["id"] {
			t.Errorf("plan id %v differs from the add-on's nested plan id %v", p["id"], opMap(res.v)["plan"])
		}
	}
}

// TestOperatorRateLimit: a token bucket per credential (per client IP
// before authentication), RateLimit-Remaining on every answer, 429
// rate_limit when empty.
func TestOperatorRateLimit(t *testing.T) {
	tiny := web.RateLimit{Burst: 3, PerMinute: 0.001} // no refill within the test
	t.Run("in process", func(t *testing.T) {
		e := newOpEnv(t, opConfig{limit: tiny})
		e.drain(t, e.e, opReq{path: "/admin/api/plans"})
		// Another IP's bucket is separate from the credential's.
		opServe(t, e.e, e.spec, opReq{path: "/admin/api/plans", header: map[string]string{"Authorization": "Bearer wrong"}, remote: "198.51.100.7:1", invalid: true}).want(t, 401)
		// Wrong passwords drain their IP's bucket: guessing is limited.
		e.drain(t, e.e, opReq{path: "/admin/api/plans", header: map[string]string{"Authorization": "Bearer wrong"}, remote: "198.51.100.8:1", invalid: true})
		// Behind Heroku's router the client is the last X-Forwarded-For
		// entry; a spoofed first entry does not give a new bucket.
		spoof := opReq{path: "/admin/api/plans", header: map[string]string{"Authorization": "Bearer wrong", "X-Forwarded-For": "203.0.113.1, 198.51.100.8"}, remote: "10.0.0.1:1", invalid: true}
		opServe(t, e.e, e.spec, spoof).want(t, 429, "rate_limit")
	})
	t.Run("shared across dynos through Redis", func(t *testing.T) {
		buckets := redisBuckets(t)
		e := newOpEnv(t, opConfig{limit: tiny, buckets: buckets})
		// A second web process on the same Redis: the bucket is one.
		other := web.New(web.Options{Service: e.svc, AdminPassword: opPassword, OperatorRateLimit: tiny, RateBuckets: buckets})
		for i, h := range []http.Handler{e.e, other, e.e} {
			got := opServe(t, h, e.spec, opReq{path: "/admin/api/plans"}).want(t, 200)
			if rem := got.header.Get("RateLimit-Remaining"); rem != strconv.Itoa(2-i) {
				t.Errorf("request %d: RateLimit-Remaining %s, want %d", i+1, rem, 2-i)
			}
		}
		opServe(t, other, e.spec, opReq{path: "/admin/api/plans"}).want(t, 429, "rate_limit")
	})
	t.Run("Redis down: limited per process", func(t *testing.T) {
		down := &failingBuckets{}
		e := newOpEnv(t, opConfig{limit: tiny, buckets: down})
		e.drain(t, e.e, opReq{path: "/admin/api/plans"})
		if down.calls == 0 {
			t.Error("the shared buckets were never tried")
		}
		if len(e.logs.lines("shared rate limit unavailable")) == 0 {
			t.Error("the fallback is not logged")
		}
	})
}

// drain sends r until the tiny bucket (3 tokens) is empty, checking the
// countdown and the 429.
func (e *opEnv) drain(tb testing.TB, h http.Handler, r opReq) {
	tb.Helper()
	for i := range 3 {
		got := opServe(tb, h, e.spec, r)
		if got.status == 429 {
			tb.Fatalf("request %d: 429 before the bucket was empty", i+1)
		}
		if rem := got.header.Get("RateLimit-Remaining"); rem != strconv.Itoa(2-i) {
			tb.Errorf("request %d: RateLimit-Remaining %s, want %d", i+1, rem, 2-i)
		}
	}
	got := opServe(tb, h, e.spec, r).want(tb, 429, "rate_limit")
	if got.header.Get("RateLimit-Remaining") != "0" {
		tb.Errorf("429 with RateLimit-Remaining %q, want 0", got.header.Get("RateLimit-Remaining"))
	}
	if s, err := strconv.Atoi(got.header.Get("Retry-After")); err != nil || s < 1 {
		tb.Errorf("429 with Retry-After %q, want seconds", got.header.Get("Retry-After"))
	}
}

// TestOperatorEveryOperation runs each operation of the schema to a
// success, so every route's request and answer are validated at least once
// with a 2xx (the other tests cover the errors).
func TestOperatorEveryOperation(t *testing.T) {
	e := newOpEnv(t, opConfig{})
	ok := e.provisioned(t, "acme-ok")
	failed := e.seed(t, "acme-failed", "test", addon.StateFailed)
	for i := range 3 {
		e.seed(t, "acme-"+strconv.Itoa(i), "test", addon.StateProvisioned)
	}
	calls := []opReq{
		{path: "/admin/api/schema"},
		{path: "/admin/api/resources?state=provisioned&app=acme", header: map[string]string{"Range": "id ..; max=2"}},
		{path: "/admin/api/resources"},
		{path: "/admin/api/resources/acme-ok"},
		{path: "/admin/api/resources/" + string(ok.ID) + "/events"},
		{method: "POST", path: "/admin/api/resources/" + string(failed.ID) + "/actions/retry"},
		{method: "POST", path: "/admin/api/resources/" + string(ok.ID) + "/actions/rotate-credentials"},
		{method: "POST", path: "/admin/api/resources/" + string(ok.ID) + "/actions/deprovision", body: `{"reason": "test"}`},
		{path: "/admin/api/plans"},
		{path: "/admin/api/plans", header: map[string]string{"If-None-Match": "*"}},
	}
	for _, r := range calls {
		if got := e.do(t, r); got.status >= 300 && got.status != 304 {
			t.Errorf("%s %s: %d %s", r.method, r.path, got.status, got.body)
		}
	}
	var missing []string
	for _, o := range e.spec.ops {
		id := opString(o.op["operationId"])
		covered := false
		for code := range opMap(o.op["responses"]) {
			if strings.HasPrefix(code, "2") && e.spec.seen[id+" "+code] {
				covered = true
			}
		}
		if !covered {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		t.Errorf("operations never answered with a validated 2xx: %v", missing)
	}
	if !e.spec.seen["listResources 206"] {
		t.Error("no 206 listing validated")
	}
}
