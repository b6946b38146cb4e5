package web_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestHome: / is a small HTML page for people, linking health, the
// operator pages and the docs, and giving nothing away.
func TestHome(t *testing.T) {
	t.Parallel()
	e, _ := bare(t)
	p := do(t, e, http.MethodGet, "/", nil, nil)
	if p.status != http.StatusOK || !strings.HasPrefix(p.header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %q", p.status, p.header.Get("Content-Type"))
	}
	for _, want := range []string{`href="/healthz"`, `href="/admin/queues"`, `href="/admin/api/schema"`, "documentation", "Kiln"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	for _, secret := range []string{testAddonID, password1, password2} {
		if strings.Contains(p.body, secret) {
			t.Errorf("the page shows %q", secret)
		}
	}
	if csp := p.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	if p := do(t, e, http.MethodHead, "/", nil, nil); p.status != http.StatusOK {
		t.Errorf("HEAD / = %d", p.status)
	}
}
