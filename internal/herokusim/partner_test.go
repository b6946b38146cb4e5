package herokusim_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/kiln-dev/kiln/internal/herokusim"
)

func TestGetAddonShape(t *testing.T) {
	e := start(t, herokusim.Options{})
	access, _ := e.tokens(t, idA)
	a := e.api(t, call{method: "GET", path: "/addons/" + idA, token: access})
	if a.status != http.StatusOK {
		t.Fatalf("GET: %d %v", a.status, a.body)
	}
	for _, k := range []string{"id", "name", "app", "addon_service", "plan", "state", "config_vars", "provider_id", "actions", "web_url", "created_at", "updated_at"} {
		if _, ok := a.body[k]; !ok {
			t.Errorf("GET /addons/{id} has no %q", k)
		}
	}
	app, _ := a.body["app"].(map[string]any)
	st, _ := e.sim.Addon(idA)
	if app["id"] != st.AppID || app["name"] != st.AppName || st.AppName == "" {
		t.Errorf("app = %v, want %s/%s", app, st.AppID, st.AppName)
	}
	e.sim.RenameApp(idA, "renamed")
	a = e.api(t, call{method: "GET", path: "/addons/" + idA, token: access})
	if app, _ := a.body["app"].(map[string]any); app["name"] != "renamed" {
		t.Errorf("after RenameApp the app is %v", app)
	}
	e.sim.SetState(idA, "deprovisioned")
	if a := e.api(t, call{method: "GET", path: "/addons/" + idA, token: access}); a.str("state") != "deprovisioned" {
		t.Errorf("after SetState the state is %q", a.str("state"))
	}
	e.sim.Remove(idA)
	wantError(t, e.api(t, call{method: "GET", path: "/addons/" + idA, token: access}), http.StatusNotFound, "not_found")
}

func TestRevokeTokens(t *testing.T) {
	e := start(t, herokusim.Options{})
	access, refresh := e.tokens(t, idA)
	if !e.sim.RevokeTokens(idA) {
		t.Fatal("RevokeTokens found no add-on")
	}
	wantError(t, e.api(t, call{method: "GET", path: "/addons/" + idA, token: access}), http.StatusUnauthorized, "unauthorized")
	if a := e.token(t, refreshForm(refresh)); a.status != http.StatusUnauthorized {
		t.Errorf("refresh after revocation: %d, want 401", a.status)
	}
}

// receiver records webhook deliveries and checks their signature.
type receiver struct {
	mu     sync.Mutex
	secret string
	got    []map[string]any
	valid  []bool
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	m := hmac.New(sha256.New, []byte(r.secret))
	m.Write(body)
	ok := hmac.Equal([]byte(req.Header.Get("Heroku-Webhook-Hmac-SHA256")), []byte(base64.StdEncoding.EncodeToString(m.Sum(nil))))
	var v map[string]any
	_ = json.Unmarshal(body, &v)
	r.mu.Lock()
	r.got, r.valid = append(r.got, v), append(r.valid, ok)
	r.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func TestWebhookSubscriptionAndDelivery(t *testing.T) {
	e := start(t, herokusim.Options{})
	access, _ := e.tokens(t, idA)
	rcv := &receiver{secret: "kiln-chosen-secret"}
	hook := httptest.NewServer(rcv)
	t.Cleanup(hook.Close)

	bad := []struct{ name, body string }{
		{"no include", `{"level":"notify","url":"https://x.example.com/h"}`},
		{"unknown event", `{"include":["api:nope"],"level":"notify","url":"https://x.example.com/h"}`},
		{"bad level", `{"include":["api:app"],"level":"loud","url":"https://x.example.com/h"}`},
		{"plain http off loopback", `{"include":["api:app"],"level":"notify","url":"http://x.example.com/h"}`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, e.api(t, call{method: "POST", path: "/addons/" + idA + "/webhooks", token: access, body: tt.body}), http.StatusUnprocessableEntity, "invalid_params")
		})
	}
	body := `{"include":["api:addon-attachment","api:app"],"level":"notify","url":"` + hook.URL + `/hooks","secret":"kiln-chosen-secret","authorization":null}`
	a := e.api(t, call{method: "POST", path: "/addons/" + idA + "/webhooks", token: access, body: body})
	if a.status != http.StatusCreated || a.str("id") == "" || a.str("level") != "notify" {
		t.Fatalf("subscribe: %d %v", a.status, a.body)
	}
	if a.header.Get("Heroku-Webhook-Secret") != "" {
		t.Error("the secret was echoed though Kiln chose it")
	}
	// Without a secret, Heroku makes one and returns it once.
	b := e.api(t, call{method: "POST", path: "/addons/" + idA + "/webhooks", token: access,
		body: `{"include":["api:app"],"level":"notify","url":"https://other.example.com/h"}`})
	if b.status != http.StatusCreated || len(b.header.Get("Heroku-Webhook-Secret")) < 32 {
		t.Errorf("subscribe without a secret: %d, secret header %q", b.status, b.header.Get("Heroku-Webhook-Secret"))
	}
	// Subscribing the same URL again replaces the subscription.
	e.api(t, call{method: "POST", path: "/addons/" + idA + "/webhooks", token: access, body: body})
	if n := len(e.sim.Webhooks(idA)); n != 2 {
		t.Errorf("%d subscriptions, want 2", n)
	}
	if n := countKind(e.sim.Calls(), herokusim.KindWebhookCreate); n != 7 {
		t.Errorf("%d webhook-create calls recorded, want 7", n)
	}

	out, err := e.sim.Deliver(context.Background(), idA, herokusim.Event{Type: "api:app", Action: "update", ID: "ev-1"})
	if err != nil {
		t.Fatal(err)
	}
	var ours herokusim.Delivery
	for _, d := range out {
		if strings.HasPrefix(d.Error, "") && d.Status == http.StatusOK {
			ours = d
		}
	}
	if ours.EventID != "ev-1" {
		t.Fatalf("deliveries %+v: none reached the receiver with 200", out)
	}
	rcv.mu.Lock()
	got := rcv.got[0]
	rcv.mu.Unlock()
	data, _ := got["data"].(map[string]any)
	st, _ := e.sim.Addon(idA)
	if got["id"] != "ev-1" || got["action"] != "update" || got["resource"] != "app" || data["name"] != st.AppName {
		t.Errorf("delivery body %v", got)
	}
	out, _ = e.sim.Deliver(context.Background(), idA, herokusim.Event{Type: "api:app", Action: "update", BadSignature: true})
	for _, d := range out {
		if strings.Contains(d.WebhookID, "") && d.Status == http.StatusOK {
			t.Errorf("a badly signed delivery was accepted: %+v", d)
		}
	}
	// Attachment events only reach subscriptions that include them.
	e.sim.Attach(idA, "staging-app", "KILN_STAGING")
	out, _ = e.sim.Deliver(context.Background(), idA, herokusim.Event{Type: "api:addon-attachment", Action: "create"})
	if len(out) != 1 {
		t.Errorf("attachment event went to %d subscriptions, want 1", len(out))
	}
}

func countKind(calls []herokusim.Call, kind string) int {
	n := 0
	for _, c := range calls {
		if c.Kind == kind {
			n++
		}
	}
	return n
}

func TestLogplexEndpoint(t *testing.T) {
	e := start(t, herokusim.Options{})
	e.sim.NewAddon(idA)
	u := e.sim.LogInputURL(e.srv.URL, idA)
	if !strings.Contains(u, "token:t.") || !strings.HasSuffix(u, "/logs") {
		t.Fatalf("log_input_url %q", u)
	}
	post := func(url, ct, count, body string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Content-Type", ct)
		if count != "" {
			req.Header.Set("Logplex-Msg-Count", count)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	f1 := "<134>1 2026-03-03T18:00:00Z host app kiln - - Provisioning started."
	f2 := "<131>1 2026-03-03T18:00:01.5Z host app kiln - - Provisioning failed: no capacity."
	frames := framed(f1) + framed(f2)
	tests := []struct {
		name, ct, count, body string
		want                  int
	}{
		{"wrong content type", "text/plain", "2", frames, http.StatusUnsupportedMediaType},
		{"no count", "application/logplex-1", "", frames, http.StatusBadRequest},
		{"count does not match", "application/logplex-1", "3", frames, http.StatusBadRequest},
		{"not octet counted", "application/logplex-1", "1", f1, http.StatusBadRequest},
		{"count too long", "application/logplex-1", "1", "999 " + f1, http.StatusBadRequest},
		{"not RFC 5424", "application/logplex-1", "1", framed("hello there"), http.StatusBadRequest},
		{"good", "application/logplex-1", "2", frames, http.StatusNoContent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := post(u, tt.ct, tt.count, tt.body); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
	lines := e.sim.Logs(idA)
	if len(lines) != 2 || lines[0].Raw != f1 || lines[1].Message != "Provisioning failed: no capacity." || lines[1].Priority != 131 || lines[0].AppName != "app" || lines[0].ProcID != "kiln" {
		t.Errorf("lines %+v", lines)
	}
	e.sim.RotateLogToken(idA)
	if got := post(u, "application/logplex-1", "1", framed(f1)); got != http.StatusUnauthorized {
		t.Errorf("the old URL after rotation: %d, want 401", got)
	}
	if got := post(e.sim.LogInputURL(e.srv.URL, idA), "application/logplex-1", "1", framed(f1)); got != http.StatusNoContent {
		t.Errorf("the new URL: %d, want 204", got)
	}
}

func framed(s string) string {
	return itoa(len(s)) + " " + s
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
