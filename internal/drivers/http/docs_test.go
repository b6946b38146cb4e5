package http_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	httpdriver "github.com/kiln-dev/kiln/internal/drivers/http"
	"github.com/kiln-dev/kiln/internal/kilntest"
)

// docBlock returns the shell block of docs/http-driver.md between the
// markers <!-- name --> and <!-- /name -->.
func docBlock(t *testing.T, name string) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "http-driver.md"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?s)<!-- ` + name + ` -->\s*` + "```sh\n(.*?)```" + `\s*<!-- /` + name + ` -->`)
	m := re.FindSubmatch(doc)
	if m == nil {
		t.Fatalf("docs/http-driver.md has no %s block", name)
	}
	return string(m[1])
}

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			kilntest.SkipMissing(t, tool+" is not installed, so the documented signature lines were not run (make test installs it as root; else: sudo apt-get install -y "+tool+")")
		}
	}
}

// TestDocsVerifyLine runs the documented openssl line on signatures made by
// Kiln's signer: it must say valid for a real one and INVALID for a
// tampered body, a wrong secret or a wrong path, and flag a stale one.
func TestDocsVerifyLine(t *testing.T) {
	needTools(t, "bash", "openssl", "sed", "grep", "cut")
	script := docBlock(t, "verify-signature")
	body := []byte(`{"id":"01234567-89ab-cdef-0123-456789abcdef","plan":"test","note":"it's $HOME \\n"}`)
	now := time.Now()
	tests := []struct {
		name        string
		sig, secret string
		path        string
		body        []byte
		want        string
	}{
		{"valid", httpdriver.Sign(secret, now, "POST", "/kiln/resources", body), secret, "/kiln/resources", body, "valid\n"},
		{"tampered body", httpdriver.Sign(secret, now, "POST", "/kiln/resources", body), secret, "/kiln/resources", append([]byte("x"), body...), "INVALID\n"},
		{"wrong secret", httpdriver.Sign(secret, now, "POST", "/kiln/resources", body), "another-secret", "/kiln/resources", body, "INVALID\n"},
		{"wrong path", httpdriver.Sign(secret, now, "POST", "/kiln/resources", body), secret, "/resources", body, "INVALID\n"},
		{"stale", httpdriver.Sign(secret, now.Add(-10*time.Minute), "POST", "/kiln/resources", body), secret, "/kiln/resources", body, "valid\nSTALE: 60"},
		{"empty body", httpdriver.Sign(secret, now, "DELETE", "/resources/x", nil), secret, "/resources/x", nil, "valid\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "body.json"), tt.body, 0o600); err != nil {
				t.Fatal(err)
			}
			method := "POST"
			if tt.body == nil {
				method = "DELETE"
			}
			cmd := exec.Command("bash", "-c", script)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "SIG="+tt.sig, "SECRET="+tt.secret, "METHOD="+method, "REQ_PATH="+tt.path)
			out, err := cmd.CombinedOutput()
			if err != nil && !strings.Contains(tt.want, "STALE") {
				t.Fatalf("%v: %s", err, out)
			}
			if !strings.HasPrefix(string(out), tt.want) {
				t.Fatalf("the documented line printed %q, want %q", out, tt.want)
			}
		})
	}
}

// TestDocsSendLine runs the documented curl line against a server that
// verifies with Kiln's Verify: a partner following the docs signs exactly
// as Kiln does.
func TestDocsSendLine(t *testing.T) {
	needTools(t, "bash", "openssl", "curl", "cut")
	script := docBlock(t, "send-signed")
	var verr error = httpdriver.ErrNoSignature
	var key string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		verr = httpdriver.Verify(secret, r.Header.Get("Kiln-Signature"), time.Now(), r.Method, r.URL.EscapedPath(), b)
		key = r.Header.Get("Idempotency-Key")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"config":{"URL":"https://x"}}`)
	}))
	defer srv.Close()
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append(os.Environ(), "SECRET="+secret, "URL="+srv.URL)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if verr != nil || key == "" {
		t.Fatalf("the documented curl line's request: signature %v, Idempotency-Key %q", verr, key)
	}
	if !strings.Contains(string(out), `"URL"`) {
		t.Errorf("curl printed %q", out)
	}
}
