package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestOperatorPages checks that the web process serves the queue dashboard
// and /metrics as cmd/web wires them (asynqmon and the queue metrics on the
// process's own Redis), behind the admin password.
func TestOperatorPages(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	id, status, _ := s.Provision("test")
	if status != http.StatusAccepted {
		t.Fatalf("provision: %d", status)
	}
	eventually(t, 30*time.Second, "the add-on is provisioned", func() bool { return s.State(id) == "provisioned" })

	get := func(path, password string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, s.webURL+path, nil)
		if password != "" {
			req.SetBasicAuth("admin", password)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, path := range []string{"/metrics", "/admin/queues", "/admin/queues/api/queues"} {
		if code, _ := get(path, ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s without the admin password: %d, want 401", path, code)
		}
		if code, _ := get(path, "not-the-password"); code != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong password: %d, want 401", path, code)
		}
	}
	code, body := get("/metrics", "e2e-admin-password-0123456789abcdef")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{"\nasynq_up 1\n", "\nkiln_addons{state=\"provisioned\"} 1\n", `asynq_tasks_processed_total{queue="grant"}`, "kiln_http_requests_total{"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics has no %q", strings.TrimSpace(want))
		}
	}
	if code, body := get("/admin/queues", "e2e-admin-password-0123456789abcdef"); code != http.StatusOK || !strings.Contains(body, `id="root"`) || strings.Contains(body, "https://") {
		t.Errorf("/admin/queues: %d, want asynqmon's page with no outside links", code)
	}
	if code, body := get("/admin/queues/api/queues", "e2e-admin-password-0123456789abcdef"); code != http.StatusOK || !strings.Contains(body, `"grant"`) {
		t.Errorf("/admin/queues/api/queues: %d %s", code, body)
	}
}
