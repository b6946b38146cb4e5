package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

// TestAccountURL: the URL the account driver hands a customer leads to
// Kiln's tenant API. Its credentials answer GET /api/v1/account with the
// plan, a wrong key is 401, exceeding the plan's rate is 429, the use shows
// on the dashboard's "API key last used", and after deprovisioning the key
// opens nothing.
func TestAccountURL(t *testing.T) {
	s := newStack(t)
	id := s.provisioned("test")
	h, _ := s.Sim.Addon(id)
	u, err := url.Parse(h.Config[prefix+"_URL"])
	if err != nil || u.User == nil {
		t.Fatalf("%s_URL = %q", prefix, h.Config[prefix+"_URL"])
	}
	name := u.User.Username()
	key, _ := u.User.Password()
	// The URL names Kiln's public host (PUBLIC_URL); the test reaches the
	// same web process on its local port.
	get := func(user, pass string) (*http.Response, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("GET", s.webURL+u.Path+"/api/v1/account", nil)
		req.SetBasicAuth(user, pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp, body
	}

	resp, body := get(name, key)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/account answered %d %v", resp.StatusCode, body)
	}
	plan, _ := body["plan"].(map[string]any)
	limits, _ := body["limits"].(map[string]any)
	if plan["slug"] != "test" || body["name"] != name || limits["requests_per_second"] != float64(1) || body["created_at"] == nil || body["last_used_at"] == nil {
		t.Errorf("account = %v", body)
	}
	if resp.Header.Get("RateLimit-Remaining") == "" {
		t.Error("no RateLimit-Remaining")
	}

	// Plan test allows one request a second: the next ones at once are 429.
	limited := false
	for range 5 {
		resp, _ := get(name, key)
		if resp.StatusCode == http.StatusTooManyRequests {
			limited = resp.Header.Get("RateLimit-Remaining") == "0" && resp.Header.Get("Retry-After") != ""
			break
		}
	}
	if !limited {
		t.Error("five requests at once on a plan of one a second were never refused with 429, RateLimit-Remaining: 0 and Retry-After")
	}

	if resp, _ := get(name, key+"x"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a wrong key answered %d, want 401", resp.StatusCode)
	}
	var lastUsed *time.Time
	if err := s.db.Gorm().Raw("SELECT last_used_at FROM accounts WHERE id = ?", id).Scan(&lastUsed).Error; err != nil {
		t.Fatal(err)
	}
	if lastUsed == nil || time.Since(*lastUsed) > time.Minute {
		t.Errorf("API key last used = %v after the calls", lastUsed)
	}

	if status, _ := s.Call("DELETE", "/heroku/resources/"+id, nil); status != http.StatusNoContent {
		t.Fatalf("deprovision answered %d", status)
	}
	eventually(t, 30*time.Second, "deprovisioned", func() bool { return s.State(id) == addon.StateDeprovisioned })
	// Failed credentials never reach the account's bucket, so no 429 can
	// hide the answer.
	if resp, _ := get(name, key); resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusGone {
		t.Errorf("the key of a deprovisioned add-on answered %d, want 401 or 410", resp.StatusCode)
	}
}
