package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/herokusim"
)

// The end-to-end tests of issue 14: Kiln in step with Heroku.

// envValue is a variable of the stack's environment (the last one set).
func (s *stack) envValue(name string) string {
	v := ""
	for _, e := range s.env {
		if k, val, ok := strings.Cut(e, "="); ok && k == name {
			v = val
		}
	}
	return v
}

// operator calls the operator API and decodes its JSON answer.
func (s *stack) operator(method, path string) (int, map[string]any) {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.webURL+"/admin/api"+path, nil)
	req.SetBasicAuth("admin", s.envValue("ADMIN_PASSWORD"))
	req.Header.Set("Accept", "application/vnd.kiln+json; version=1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

// operatorList lists add-ons through the operator API.
func (s *stack) operatorList(query string) []map[string]any {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.webURL+"/admin/api/resources?"+query, nil)
	req.SetBasicAuth("admin", s.envValue("ADMIN_PASSWORD"))
	req.Header.Set("Accept", "application/vnd.kiln+json; version=1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		s.t.Fatalf("list ?%s: %d %v", query, resp.StatusCode, err)
	}
	return out
}

func appName(res map[string]any) string {
	app, _ := res["app"].(map[string]any)
	name, _ := app["name"].(string)
	return name
}

func herokuField(res map[string]any, key string) any {
	h, _ := res["heroku"].(map[string]any)
	return h[key]
}

// hasEvent reports whether the add-on's audit trail has a state event to
// state with this message.
func (s *stack) hasEvent(id string, state addon.State, msg string) bool {
	events, err := s.db.Events(context.Background(), addon.ID(id))
	if err != nil {
		s.t.Fatal(err)
	}
	for _, e := range events {
		if e.Kind == "state" && e.State == state && e.Message == msg {
			return true
		}
	}
	return false
}

// TestSyncWithHeroku: an add-on Heroku reports deprovisioned, and one it
// answers 404 for, are cleaned up by the sync with the reason recorded; one
// whose token Heroku refuses is flagged for operators and kept whole; the
// app name from GET /addons/{id} reaches the operator API and its filter.
func TestSyncWithHeroku(t *testing.T) {
	s := newStack(t, "HEROKU_SYNC_INTERVAL=2s", "HEROKU_WEBHOOKS=false")
	gone := s.provisioned("test")
	missing := s.provisioned("test")
	revoked := s.provisioned("test")
	kept := s.provisioned("test")
	s.Sim.SetState(gone, "deprovisioned")
	s.Sim.Remove(missing)
	s.Sim.RevokeTokens(revoked)

	for _, id := range []string{gone, missing} {
		eventually(t, 30*time.Second, "the sync deprovisions "+id, func() bool { return s.State(id) == addon.StateDeprovisioned })
		if !s.hasEvent(id, addon.StateDeprovisioning, addon.ReasonRemovedOnHeroku) {
			t.Errorf("%s: no deprovisioning event with reason %q", id, addon.ReasonRemovedOnHeroku)
		}
		if n := s.accounts(id); n != 0 {
			t.Errorf("%s: %d live accounts after the sync cleaned it up, want 0", id, n)
		}
	}
	var res map[string]any
	eventually(t, 30*time.Second, "the refused token is flagged", func() bool {
		_, res = s.operator("GET", "/resources/"+revoked)
		return herokuField(res, "access_refused") != nil
	})
	if s.State(revoked) != addon.StateProvisioned || s.accounts(revoked) != 1 {
		t.Errorf("the add-on with a refused token is %s with %d accounts, want provisioned and kept", s.State(revoked), s.accounts(revoked))
	}
	// The flag is saved before the line is logged, and the line reaches
	// the test through a pipe: wait for it too.
	eventually(t, 10*time.Second, "an error line in the worker's log for the refused token", func() bool {
		return strings.Contains(s.Log("worker"), "Heroku refused the add-on's token")
	})
	req, _ := http.NewRequest(http.MethodGet, s.webURL+"/metrics", nil)
	req.SetBasicAuth("admin", s.envValue("ADMIN_PASSWORD"))
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Error(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), "\nkiln_addons_access_refused 1\n") {
			t.Error("/metrics does not count the refused token in kiln_addons_access_refused")
		}
	}

	h, _ := s.Sim.Addon(kept)
	eventually(t, 30*time.Second, "the app name reaches the operator API", func() bool {
		_, res = s.operator("GET", "/resources/"+kept)
		return appName(res) == h.AppName
	})
	if got := herokuField(res, "state"); got != "provisioned" {
		t.Errorf("heroku.state = %v, want provisioned", got)
	}
	list := s.operatorList("app=" + strings.ToUpper(h.AppName))
	if len(list) != 1 || list[0]["id"] != kept {
		t.Errorf("?app=%s lists %d add-ons, want just %s", h.AppName, len(list), kept)
	}
	if s.State(kept) != addon.StateProvisioned {
		t.Errorf("the add-on Heroku still has is %s", s.State(kept))
	}
}

// TestWebhooks: after provisioning Kiln subscribes the add-on; a signed
// app rename reaches the operator API; a bad signature gets 401 and changes
// nothing; a repeated event is applied once.
func TestWebhooks(t *testing.T) {
	s := newStack(t, "PUBLIC_URL=@web", "HEROKU_SYNC_INTERVAL=1h")
	id := s.provisioned("test")
	var hooks []herokusim.Webhook
	eventually(t, 30*time.Second, "Kiln subscribes the add-on's webhooks", func() bool {
		hooks = s.Sim.Webhooks(id)
		return len(hooks) == 1
	})
	if h := hooks[0]; h.Level != "notify" || !strings.HasPrefix(h.URL, s.webURL+"/heroku/webhooks") || len(h.Secret) < 32 ||
		strings.Join(h.Include, ",") != "api:addon-attachment,api:app" {
		t.Errorf("subscription %+v", h)
	}
	ctx := context.Background()
	deliver := func(ev herokusim.Event) int {
		t.Helper()
		out, err := s.Sim.Deliver(ctx, id, ev)
		if err != nil || len(out) != 1 {
			t.Fatalf("deliver: %v %v", out, err)
		}
		return out[0].Status
	}
	name := func() string {
		_, res := s.operator("GET", "/resources/"+id)
		return appName(res)
	}
	h, _ := s.Sim.Addon(id)
	app := func(n string) map[string]any { return map[string]any{"id": h.AppID, "name": n} }

	first := uuid.NewString()
	if st := deliver(herokusim.Event{Type: "api:app", Action: "update", ID: first, Data: app("renamed-once")}); st != http.StatusOK {
		t.Fatalf("a signed delivery got %d", st)
	}
	if got := name(); got != "renamed-once" {
		t.Fatalf("app name after the webhook = %q", got)
	}
	if st := deliver(herokusim.Event{Type: "api:app", Action: "update", Data: app("forged"), BadSignature: true}); st != http.StatusUnauthorized {
		t.Errorf("a bad signature got %d, want 401", st)
	}
	if got := name(); got != "renamed-once" {
		t.Errorf("a badly signed event changed the app name to %q", got)
	}
	if st := deliver(herokusim.Event{Type: "api:app", Action: "update", Data: app("renamed-twice")}); st != http.StatusOK {
		t.Fatalf("second rename got %d", st)
	}
	// The first event again (Heroku delivers at least once): acknowledged,
	// not applied, so the newer name stays.
	if st := deliver(herokusim.Event{Type: "api:app", Action: "update", ID: first, Data: app("renamed-once")}); st != http.StatusOK {
		t.Errorf("a repeated event got %d, want 2xx", st)
	}
	if got := name(); got != "renamed-twice" {
		t.Errorf("after the repeated event the app name is %q, want renamed-twice", got)
	}
	s.Sim.Attach(id, "acme-staging", "KILN_STAGING")
	if st := deliver(herokusim.Event{Type: "api:addon-attachment", Action: "create"}); st != http.StatusOK {
		t.Fatalf("attachment event got %d", st)
	}
	_, res := s.operator("GET", "/resources/"+id)
	atts, _ := herokuField(res, "attachments").([]any)
	if len(atts) != 1 || !strings.Contains(mustJSON(atts), "acme-staging") {
		t.Errorf("attachments = %s, want the new one", mustJSON(atts))
	}
	// The primary attachment, with a rotated log_input_url: Kiln takes
	// the new URL (only for an add-on that was given one).
	if st := deliver(herokusim.Event{Type: "api:addon-attachment", Action: "update", Data: map[string]any{
		"id": "primary", "name": "KILN", "app": map[string]any{"id": h.AppID, "name": "renamed-twice"},
		"log_input_url": "https://token:t.rotated@logs.example.com/logs",
	}}); st != http.StatusOK {
		t.Fatalf("attachment update got %d", st)
	}
	if got := s.Get(id).LogInputURL; got != "" {
		t.Errorf("an add-on provisioned without a log_input_url took one from a webhook: %q", got)
	}
	// Unsigned and unknown add-ons are refused too.
	resp, err := http.Post(s.webURL+"/heroku/webhooks?addon_id="+id, "application/json", bytes.NewReader([]byte(`{"id":"x"}`)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("an unsigned delivery got %d, want 401", resp.StatusCode)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestAsyncDeprovision: with ASYNC_DEPROVISION=true, DELETE answers 202
// (again while the cleanup runs), Heroku hears actions/deprovision only
// once the resource is gone, and a DELETE afterwards is 410.
func TestAsyncDeprovision(t *testing.T) {
	s := newStack(t, "ASYNC_DEPROVISION=true", "HEROKU_WEBHOOKS=false")
	id := s.provisioned("test")
	hold := make(chan struct{})
	s.Sim.Inject(herokusim.Fault{Kind: herokusim.KindDeprovision, AddonID: id, Hold: hold, Times: 1})
	if status, body := s.Call("DELETE", "/heroku/resources/"+id, nil); status != http.StatusAccepted {
		t.Fatalf("DELETE answered %d %v, want 202", status, body)
	}
	eventually(t, 30*time.Second, "actions/deprovision reaches Heroku", func() bool { return s.Sim.Holding(herokusim.KindDeprovision) == 1 })
	if n := s.accounts(id); n != 0 {
		t.Errorf("Heroku was told before the resource was gone: %d live accounts", n)
	}
	if status, _ := s.Call("DELETE", "/heroku/resources/"+id, nil); status != http.StatusAccepted {
		t.Errorf("a repeat while cleaning up answered %d, want 202", status)
	}
	close(hold)
	eventually(t, 30*time.Second, "deprovisioned", func() bool { return s.State(id) == addon.StateDeprovisioned })
	if s.SimState(id) != "deprovisioned" {
		t.Errorf("Heroku sees %q, want deprovisioned", s.SimState(id))
	}
	if status, _ := s.Call("DELETE", "/heroku/resources/"+id, nil); status != http.StatusGone {
		t.Errorf("a repeat afterwards answered %d, want 410", status)
	}
	if n := count(s.Kinds(id), herokusim.KindDeprovision); n != 1 {
		t.Errorf("actions/deprovision succeeded %d times, want 1", n)
	}
}

// TestDeprovisionDefaultIsSync: without ASYNC_DEPROVISION, DELETE is 204 and
// Heroku is never called.
func TestDeprovisionDefaultIsSync(t *testing.T) {
	s := newStack(t, "HEROKU_WEBHOOKS=false")
	id := s.provisioned("test")
	if status, _ := s.Call("DELETE", "/heroku/resources/"+id, nil); status != http.StatusNoContent {
		t.Fatalf("DELETE answered %d, want 204", status)
	}
	eventually(t, 30*time.Second, "deprovisioned", func() bool { return s.State(id) == addon.StateDeprovisioned })
	if n := count(s.Kinds(id), herokusim.KindDeprovision); n != 0 {
		t.Errorf("actions/deprovision called %d times without ASYNC_DEPROVISION", n)
	}
}

// TestLogStream: with a log_input_url, the simulator's logplex endpoint gets
// well-formed frames for each milestone (provisioning started, resource
// ready, provisioned, plan changed, credentials rotated, a failure with its
// reason), and none carries a token, key or password.
func TestLogStream(t *testing.T) {
	s := newStack(t, "PUBLIC_URL=@web", "CREDENTIAL_GRACE=1h")
	id := uuid.NewString()
	grant := s.Sim.NewAddon(id)
	body := provisionBody(id, "test", &grant)
	body["log_input_url"] = s.Sim.LogInputURL(s.simURL, id)
	if status, b := s.Call("POST", "/heroku/resources", body); status != http.StatusAccepted {
		t.Fatalf("provision answered %d %v", status, b)
	}
	eventually(t, 30*time.Second, "provisioned", func() bool { return s.State(id) == addon.StateProvisioned })
	s.settled(id)
	if status, b := s.Call("PUT", "/heroku/resources/"+id, map[string]string{"plan": "basic"}); status != http.StatusOK {
		t.Fatalf("plan change answered %d %v", status, b)
	}
	if status, b := s.operator("POST", "/resources/"+id+"/actions/rotate-credentials"); status != http.StatusOK {
		t.Fatalf("rotate answered %d %v", status, b)
	}
	want := []string{"Provisioning started", "Resource ready", "Provisioned", "Plan changed from test to basic", "Credentials rotated"}
	var lines []herokusim.LogLine
	eventually(t, 30*time.Second, "every milestone reaches the log stream", func() bool {
		lines = s.Sim.Logs(id)
		for _, w := range want {
			if !anyLine(lines, w) {
				return false
			}
		}
		return true
	})

	// Heroku rotates the URL: the next write is refused (401), Kiln
	// re-reads the add-on's URL, finds no newer one and drops the line
	// rather than retry forever; once an attachment webhook brings the new
	// URL, lines flow again.
	eventually(t, 30*time.Second, "webhooks subscribed", func() bool { return len(s.Sim.Webhooks(id)) == 1 })
	s.Sim.RotateLogToken(id)
	if status, b := s.Call("PUT", "/heroku/resources/"+id, map[string]string{"plan": "test"}); status != http.StatusOK {
		t.Fatalf("plan change answered %d %v", status, b)
	}
	eventually(t, 30*time.Second, "the refused line is dropped", func() bool {
		return strings.Contains(s.Log("worker"), "the app's log stream refused Kiln's lines; dropped")
	})
	h0, _ := s.Sim.Addon(id)
	out, err := s.Sim.Deliver(context.Background(), id, herokusim.Event{Type: "api:addon-attachment", Action: "update", Data: map[string]any{
		"id": "primary", "name": "KILN", "app": map[string]any{"id": h0.AppID, "name": h0.AppName},
		"log_input_url": s.Sim.LogInputURL(s.simURL, id),
	}})
	if err != nil || len(out) != 1 || out[0].Status != http.StatusOK {
		t.Fatalf("attachment event with the new log_input_url: %v %v", out, err)
	}
	if status, b := s.Call("PUT", "/heroku/resources/"+id, map[string]string{"plan": "basic"}); status != http.StatusOK {
		t.Fatalf("plan change answered %d %v", status, b)
	}
	eventually(t, 30*time.Second, "lines reach the rotated URL", func() bool {
		lines = s.Sim.Logs(id)
		return countLines(lines, "Plan changed from test to basic") == 2
	})
	if anyLine(lines, "Plan changed from basic to test") {
		t.Error("the line refused at the old URL arrived after all")
	}

	// A failure, with the reason the customer should read.
	bad := uuid.NewString()
	s.Sim.NewAddon(bad)
	badBody := provisionBody(bad, "test", &addon.Grant{Code: "not-a-real-code", ExpiresAt: time.Now().Add(time.Minute)})
	badBody["log_input_url"] = s.Sim.LogInputURL(s.simURL, bad)
	if status, b := s.Call("POST", "/heroku/resources", badBody); status != http.StatusAccepted {
		t.Fatalf("provision answered %d %v", status, b)
	}
	var badLines []herokusim.LogLine
	eventually(t, 30*time.Second, "the failure reaches the log stream", func() bool {
		badLines = s.Sim.Logs(bad)
		return anyLine(badLines, "Provisioning failed: Heroku refused the OAuth grant")
	})

	a := s.Get(id)
	secrets := []string{a.Tokens.Access, a.Tokens.Refresh, grant.Code}
	h, _ := s.Sim.Addon(id)
	for _, v := range h.Config {
		secrets = append(secrets, v)
		if i := strings.LastIndex(v, "@"); i > 0 {
			if j := strings.LastIndex(v[:i], ":"); j > 0 {
				secrets = append(secrets, v[j+1:i]) // the password / key
			}
		}
	}
	for _, l := range append(lines, badLines...) {
		if l.AppName != "app" || l.ProcID != addonID || l.Hostname != "host" || l.Timestamp.IsZero() || l.Priority == 0 {
			t.Errorf("frame %q: app %q procid %q host %q priority %d", l.Raw, l.AppName, l.ProcID, l.Hostname, l.Priority)
		}
		for _, sec := range secrets {
			if sec != "" && strings.Contains(l.Raw, sec) {
				t.Errorf("frame %q carries a secret", l.Raw)
			}
		}
		for _, word := range []string{"token=", "password", "postgres://", "https://"} {
			if strings.Contains(strings.ToLower(l.Raw), word) {
				t.Errorf("frame %q mentions %q", l.Raw, word)
			}
		}
	}
	for _, l := range badLines {
		if strings.HasPrefix(l.Message, "Provisioning failed") && l.Priority%8 != 3 {
			t.Errorf("the failure line has priority %d, want error severity", l.Priority)
		}
	}
}

func anyLine(lines []herokusim.LogLine, prefix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l.Message, prefix) {
			return true
		}
	}
	return false
}

func countLines(lines []herokusim.LogLine, prefix string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l.Message, prefix) {
			n++
		}
	}
	return n
}
