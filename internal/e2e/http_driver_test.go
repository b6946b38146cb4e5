package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

// signingSecret is RESOURCE_HTTP_SECRET for these tests.
const signingSecret = "e2e-http-driver-secret-0123456789abcdef"

var (
	extraBuild    sync.Once
	extraBuildErr error
)

// buildExtra builds the reference partner service and kiln-heroku next to
// the other binaries, once.
func buildExtra(t testing.TB) {
	t.Helper()
	extraBuild.Do(func() {
		cmd := exec.Command("go", "build", "-o", bin+"/", "./examples/partner-service", "./cmd/kiln-heroku")
		cmd.Dir = filepath.Join("..", "..")
		out, err := cmd.CombinedOutput()
		if err != nil {
			extraBuildErr = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if extraBuildErr != nil {
		t.Fatalf("build: %v", extraBuildErr)
	}
}

// startPartner runs the reference partner service and returns its URL.
func startPartner(t testing.TB, env ...string) string {
	t.Helper()
	buildExtra(t)
	port := freePort(t)
	cmd := exec.Command(filepath.Join(bin, "partner-service"))
	cmd.Env = append(os.Environ(), append([]string{"PORT=" + strconv.Itoa(port), "KILN_SIGNING_SECRET=" + signingSecret}, env...)...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &lockedWriter{mu: &sync.Mutex{}, w: &logs}, nil
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("--- partner-service log ---\n%s", logs.String())
		}
	})
	u := "http://127.0.0.1:" + strconv.Itoa(port)
	eventually(t, 10*time.Second, "the partner service listens", func() bool {
		resp, err := http.Get(u + "/resources/x")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	return u
}

// exchange is one request through the recording proxy and its answer.
type exchange struct {
	Method, Path, Key string
	SignatureOK       bool
	Status            int
	Injected          bool // the proxy answered (a fault), the service never saw it
	Answer            string
}

// recorder is a proxy in front of the partner service: it checks every
// signature itself (an implementation independent of Kiln's), records the
// exchange, and can answer a request with a fault instead of forwarding it.
type recorder struct {
	mu     sync.Mutex
	log    []exchange
	faults map[string]int // "METHOD PATH-PREFIX" -> how many 503s to answer
	resign bool           // re-sign every request validly: a service that checks nothing
	proxy  *httputil.ReverseProxy
}

func newRecorder(t testing.TB, target string) (*recorder, string) {
	u, _ := url.Parse(target)
	r := &recorder{faults: map[string]int{}, proxy: httputil.NewSingleHostReverseProxy(u)}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv.URL
}

// ownCheck verifies Kiln-Signature from the protocol's definition.
func ownCheck(header, method, path string, body []byte) bool {
	var ts, sig string
	for _, p := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(n, 0)).Abs() > 5*time.Minute {
		return false
	}
	m := hmac.New(sha256.New, []byte(signingSecret))
	m.Write([]byte(ts + "." + method + " " + path + "."))
	m.Write(body)
	want := hex.EncodeToString(m.Sum(nil))
	return hmac.Equal([]byte(sig), []byte(want))
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	ex := exchange{Method: req.Method, Path: req.URL.EscapedPath(), Key: req.Header.Get("Idempotency-Key"),
		SignatureOK: ownCheck(req.Header.Get("Kiln-Signature"), req.Method, req.URL.EscapedPath(), body)}
	r.mu.Lock()
	inject := false
	for k, n := range r.faults {
		m, prefix, _ := strings.Cut(k, " ")
		if n > 0 && m == req.Method && strings.HasPrefix(ex.Path, prefix) {
			r.faults[k] = n - 1
			inject = true
			break
		}
	}
	resign := r.resign
	r.mu.Unlock()
	if inject {
		ex.Status, ex.Injected = http.StatusServiceUnavailable, true
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"message":"down for maintenance"}`)
		r.add(ex)
		return
	}
	if resign {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		m := hmac.New(sha256.New, []byte(signingSecret))
		m.Write([]byte(ts + "." + req.Method + " " + ex.Path + "."))
		m.Write(body)
		req.Header.Set("Kiln-Signature", "t="+ts+",v1="+hex.EncodeToString(m.Sum(nil)))
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	r.proxy.ServeHTTP(rec, req)
	ex.Status, ex.Answer = rec.Code, rec.Body.String()
	r.add(ex)
	for k, vs := range rec.Header() {
		w.Header()[k] = vs
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

func (r *recorder) add(ex exchange) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, ex)
}

func (r *recorder) exchanges(method, path string) []exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []exchange
	for _, ex := range r.log {
		if ex.Method == method && ex.Path == path {
			out = append(out, ex)
		}
	}
	return out
}

// TestHTTPDriver runs Kiln with RESOURCE_DRIVER=http against the reference
// partner service: the provision reaches it signed (checked here, not by
// Kiln's code), a 503 is retried with the same Idempotency-Key, a 202 is
// polled until the resource is ready, the service's config reaches Heroku
// with the prefix, a 422 on plan change reaches Heroku with the service's
// message, and deprovisioning reaches DELETE.
func TestHTTPDriver(t *testing.T) {
	partner := startPartner(t, "PARTNER_CREATE_DELAY=2s", "PARTNER_PLANS=test,basic,pro")
	rec, proxyURL := newRecorder(t, partner)
	rec.faults["POST /resources"] = 1
	plans, err := filepath.Abs("testdata/http-plans.json")
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t, "RESOURCE_DRIVER=http", "RESOURCE_HTTP_URL="+proxyURL, "RESOURCE_HTTP_SECRET="+signingSecret,
		"RESOURCE_PLANS_FILE="+plans, "RESOURCE_HTTP_TIMEOUT=5s")

	id, status, _ := s.Provision("test")
	if status != http.StatusAccepted {
		t.Fatalf("provision answered %d", status)
	}
	eventually(t, 60*time.Second, "provisioned", func() bool { return s.State(id) == addon.StateProvisioned })
	s.settled(id)

	posts := rec.exchanges("POST", "/resources")
	if len(posts) < 2 || !posts[0].Injected {
		t.Fatalf("POST /resources exchanges = %+v; want the injected 503, then a retry", posts)
	}
	for i, p := range posts {
		if !p.SignatureOK {
			t.Errorf("POST #%d was not signed correctly", i+1)
		}
		if p.Key == "" || p.Key != posts[0].Key {
			t.Errorf("POST #%d carried Idempotency-Key %q, the first %q: a retry must repeat it", i+1, p.Key, posts[0].Key)
		}
	}
	if last := posts[len(posts)-1]; last.Status != http.StatusAccepted {
		t.Errorf("the service answered the create %d, want 202 (it takes 2 s)", last.Status)
	}
	polls := rec.exchanges("GET", "/resources/"+id)
	if len(polls) == 0 || polls[len(polls)-1].Status != http.StatusOK {
		t.Fatalf("polls = %+v; want GET /resources/%s until 200", polls, id)
	}
	for _, p := range polls {
		if !p.SignatureOK {
			t.Error("a poll was not signed correctly")
		}
	}
	var ready struct{ Config map[string]string }
	if err := json.Unmarshal([]byte(polls[len(polls)-1].Answer), &ready); err != nil || ready.Config["URL"] == "" {
		t.Fatalf("the service's final answer %q has no config", polls[len(polls)-1].Answer)
	}
	h, _ := s.Sim.Addon(id)
	if h.Config[prefix+"_URL"] != ready.Config["URL"] || h.Config[prefix+"_API_KEY"] != ready.Config["API_KEY"] {
		t.Errorf("Heroku got config %v; want the service's %v under the prefix %s_", sortedKeys(h.Config), ready.Config, prefix)
	}
	if h.State != "provisioned" {
		t.Errorf("Heroku sees the add-on %s", h.State)
	}

	if status, body := s.Call("PUT", "/heroku/resources/"+id, map[string]string{"plan": "pro"}); status != http.StatusOK {
		t.Fatalf("upgrade answered %d %v", status, body)
	}
	status, body := s.Call("PUT", "/heroku/resources/"+id, map[string]string{"plan": "legacy"})
	if msg, _ := body["message"].(string); status != http.StatusUnprocessableEntity || !strings.Contains(msg, `This service does not sell plan "legacy"`) {
		t.Errorf("a plan the service refuses answered %d %v; want 422 with the service's message", status, body)
	}
	if a := s.Get(id); a.Plan != "pro" {
		t.Errorf("plan after the refusal = %s, want pro", a.Plan)
	}
	puts := rec.exchanges("PUT", "/resources/"+id)
	if len(puts) != 2 || !puts[0].SignatureOK || !puts[1].SignatureOK || puts[1].Status != http.StatusUnprocessableEntity {
		t.Errorf("PUT exchanges = %+v", puts)
	}

	if status, _ := s.Call("DELETE", "/heroku/resources/"+id, nil); status != http.StatusNoContent {
		t.Fatalf("deprovision answered %d", status)
	}
	eventually(t, 30*time.Second, "deprovisioned", func() bool { return s.State(id) == addon.StateDeprovisioned })
	dels := rec.exchanges("DELETE", "/resources/"+id)
	if len(dels) == 0 || !dels[0].SignatureOK || dels[len(dels)-1].Status != http.StatusNoContent {
		t.Errorf("DELETE exchanges = %+v; want a signed DELETE answered 204", dels)
	}
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestDriverCheck: kiln-heroku driver-check passes against the reference
// service, and fails with its table against one that checks no signature
// (the reference behind a proxy that re-signs every request).
func TestDriverCheck(t *testing.T) {
	partner := startPartner(t, "PARTNER_CREATE_DELAY=1s")
	run := func(url string) (int, string) {
		cmd := exec.Command(filepath.Join(bin, "kiln-heroku"), "driver-check", "--secret", signingSecret, url)
		cmd.Dir = t.TempDir() // no .dev/env here
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, out.String() + errOut.String()
	}
	code, out := run(partner)
	if code != 0 || !strings.Contains(out, " 0 failed, 0 skipped") {
		t.Fatalf("against the reference service: exit %d\n%s", code, out)
	}

	rec, lax := newRecorder(t, partner)
	rec.resign = true
	code, out = run(lax)
	if code != 1 {
		t.Fatalf("against a service that checks no signature: exit %d, want 1\n%s", code, out)
	}
	for _, row := range []string{"FAIL    signature: an unsigned request is refused", "FAIL    signature: a 10-minute-old signature is refused", "PASS    create: a signed POST"} {
		if !strings.Contains(out, row) {
			t.Errorf("the table has no row %q:\n%s", row, out)
		}
	}
}
