package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/herokusim"
	"github.com/kiln-dev/kiln/internal/kilntest"
	"github.com/kiln-dev/kiln/internal/postgres"
	"github.com/kiln-dev/kiln/internal/secret"
)

// bin is where TestMain builds the commands.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kiln-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = dir
	build := exec.Command("go", "build", "-o", dir+"/", "./cmd/release", "./cmd/web", "./cmd/worker")
	build.Dir = filepath.Join("..", "..")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	addonID      = "kiln-e2e"
	password     = "e2e-password-0123456789abcdef0123"
	clientSecret = "e2e-oauth-client-secret"
	prefix       = "KILN_E2E"
)

// stack is one Kiln deployment under test: its processes, its database, its
// private Redis and the Heroku simulator it talks to.
type stack struct {
	t       testing.TB
	env     []string
	webURL  string
	Sim     *herokusim.Sim
	redis   *redisServer
	mu      sync.Mutex
	db      *postgres.DB
	procs   map[string]*exec.Cmd
	logs    map[string]*bytes.Buffer
	webPort int
	simURL  string // the simulator's base URL
}

// newStack migrates a fresh database with the release command and starts
// web and worker. extra overrides environment variables.
func newStack(t testing.TB, extra ...string) *stack {
	t.Helper()
	return newStackWith(t, herokusim.Options{}, extra...)
}

// newStackWith is newStack with simulator options (hooks such as OnCall).
func newStackWith(t testing.TB, simOpts herokusim.Options, extra ...string) *stack {
	t.Helper()
	simOpts.ClientSecret = clientSecret
	sim := herokusim.New(simOpts)
	simSrv := httptest.NewServer(sim)
	t.Cleanup(simSrv.Close)
	rs := startRedis(t)
	s := &stack{t: t, Sim: sim, redis: rs, procs: map[string]*exec.Cmd{}, logs: map[string]*bytes.Buffer{}, webPort: freePort(t)}
	s.webURL = "http://127.0.0.1:" + strconv.Itoa(s.webPort)
	dbURL, key := kilntest.Postgres(t), kilntest.Key()
	s.env = append(os.Environ(),
		"PORT="+strconv.Itoa(s.webPort),
		"DATABASE_URL="+dbURL,
		"REDIS_URL="+rs.URL(),
		"ADDON_ID="+addonID,
		"ADDON_PASSWORD=old-password-that-was-rotated-out,"+password,
		"ADDON_SSO_SALT=e2e-sso-salt",
		"ADDON_CONFIG_PREFIX="+prefix,
		"HEROKU_OAUTH_CLIENT_SECRET="+clientSecret,
		"HEROKU_API_URL="+simSrv.URL,
		"HEROKU_ID_URL="+simSrv.URL,
		"ENCRYPTION_KEY="+key,
		"ADMIN_PASSWORD=e2e-admin-password-0123456789abcdef",
		"PUBLIC_URL=https://kiln.example.com",
		"LOG_LEVEL=debug",
	)
	for _, e := range extra {
		// PUBLIC_URL=@web: Kiln's own URL, for webhook deliveries.
		s.env = append(s.env, strings.Replace(e, "=@web", "="+s.webURL, 1))
	}
	s.simURL = simSrv.URL
	release := exec.Command(filepath.Join(bin, "release"))
	release.Env = s.env
	if out, err := release.CombinedOutput(); err != nil {
		t.Fatalf("release: %v\n%s", err, out)
	}
	raw, _ := base64.StdEncoding.DecodeString(key)
	keys, err := secret.New([][]byte{raw})
	if err != nil {
		t.Fatal(err)
	}
	if s.db, err = postgres.Open(context.Background(), dbURL, keys); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.db.Close() })
	s.Start("web")
	s.Start("worker")
	s.waitHealthy()
	t.Cleanup(func() {
		for name := range s.procs {
			s.Stop(name)
		}
		if t.Failed() {
			for name, b := range s.logs {
				t.Logf("--- %s log ---\n%s", name, b.String())
			}
		}
	})
	return s
}

// Get reads the add-on as Kiln recorded it.
func (s *stack) Get(id string) *addon.Addon {
	s.t.Helper()
	a, err := s.db.Get(context.Background(), addon.ID(id))
	if err != nil {
		s.t.Fatalf("get %s: %v", id, err)
	}
	return a
}

// State is the add-on's state as Kiln recorded it, or "" when unknown.
func (s *stack) State(id string) addon.State {
	a, err := s.db.Get(context.Background(), addon.ID(id))
	if err != nil {
		return ""
	}
	return a.State
}

// Start runs a Kiln process ("web" or "worker").
func (s *stack) Start(name string) {
	s.t.Helper()
	s.StartAs(name, name)
}

// StartAs runs another process of a command (a second web or worker dyno)
// under its own name, with env added to the stack's environment.
func (s *stack) StartAs(name, command string, env ...string) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd := exec.Command(filepath.Join(bin, command))
	cmd.Env = append(append([]string{}, s.env...), env...)
	if s.logs[name] == nil {
		s.logs[name] = &bytes.Buffer{}
	}
	w := &lockedWriter{mu: &s.mu, w: s.logs[name]}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", name, err)
	}
	s.procs[name] = cmd
}

// Stop sends SIGTERM and waits for the process to exit; it fails the test if
// the process does not drain within Heroku's 30 s.
func (s *stack) Stop(name string) time.Duration {
	s.mu.Lock()
	cmd := s.procs[name]
	delete(s.procs, name)
	s.mu.Unlock()
	if cmd == nil {
		return 0
	}
	start := time.Now()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			s.t.Errorf("%s exited with %v after SIGTERM", name, err)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		s.t.Errorf("%s did not exit within 30 s of SIGTERM", name)
	}
	return time.Since(start)
}

// Kill sends SIGKILL: the process gets no chance to clean up.
func (s *stack) Kill(name string) {
	s.mu.Lock()
	cmd := s.procs[name]
	delete(s.procs, name)
	s.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
}

// Log returns what a process has written so far.
func (s *stack) Log(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.logs[name]; b != nil {
		return b.String()
	}
	return ""
}

func (s *stack) waitHealthy() {
	s.t.Helper()
	eventually(s.t, 20*time.Second, "web answers /healthz", func() bool {
		resp, err := http.Get(s.webURL + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// Call makes a Partner API call as Heroku does, with its credentials and
// Accept header, and decodes the JSON answer.
func (s *stack) Call(method, path string, body any) (int, map[string]any) {
	s.t.Helper()
	return s.callAt(s.webURL, method, path, body)
}

// callAt is Call to a given web process (several run in some tests).
func (s *stack) callAt(base, method, path string, body any) (int, map[string]any) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(addonID+":"+password)))
	req.Header.Set("Accept", "application/vnd.heroku-addons+json; version=3")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Errorf("%s %s: %v", method, path, err)
		return 0, nil
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			s.t.Fatalf("%s %s answered %d with non-JSON %q", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, out
}

// Provision registers a new add-on with the simulator and sends Heroku's
// provision call for it, returning its uuid and the answer.
func (s *stack) Provision(plan string) (string, int, map[string]any) {
	s.t.Helper()
	id := uuid.NewString()
	grant := s.Sim.NewAddon(id)
	status, body := s.Call("POST", "/heroku/resources", provisionBody(id, plan, &grant))
	return id, status, body
}

func provisionBody(id, plan string, grant *addon.Grant) map[string]any {
	b := map[string]any{
		"uuid":         id,
		"name":         "acme-inc-primary-" + id[:8],
		"plan":         plan,
		"region":       "amazon-web-services::us-east-1",
		"callback_url": "https://api.heroku.com/addons/" + id,
		"options":      map[string]string{},
		"oauth_grant":  nil,
		"future_field": "tolerated",
	}
	if grant != nil {
		b["oauth_grant"] = map[string]any{
			"code":       grant.Code,
			"expires_at": grant.ExpiresAt.Format("2006-01-02T15:04:05-0700"),
			"type":       "authorization_code",
		}
	}
	return b
}

// SimState returns the add-on's state as Heroku sees it.
func (s *stack) SimState(id string) string {
	a, ok := s.Sim.Addon(id)
	if !ok {
		return ""
	}
	return a.State
}

// Kinds returns the kinds of the simulator's successful calls for one
// add-on, in order; only those of the given kinds when any are given, so a
// test of one pipeline is not disturbed by the keeper's calls (webhook
// subscriptions, syncs, log lines), which come on their own schedule.
func (s *stack) Kinds(id string, only ...string) []string {
	var out []string
	for _, c := range s.Sim.Calls() {
		if c.AddonID == id && c.Status < 300 && (len(only) == 0 || slices.Contains(only, c.Kind)) {
			out = append(out, c.Kind)
		}
	}
	return out
}

func count(kinds []string, kind string) int {
	n := 0
	for _, k := range kinds {
		if k == kind {
			n++
		}
	}
	return n
}

// eventually polls cond until it holds or the timeout passes. It bounds how
// long a test waits; it never asserts how fast anything was.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting %s for: %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// redisServer is a private redis-server process, so a test can stop and
// restart Redis without disturbing other packages' tests.
type redisServer struct {
	t    testing.TB
	port int
	dir  string
	cmd  *exec.Cmd
}

func startRedis(t testing.TB) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server not installed (scripts/services.sh installs it): %v", err)
	}
	r := &redisServer{t: t, port: freePort(t), dir: t.TempDir()}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

func (r *redisServer) URL() string { return "redis://127.0.0.1:" + strconv.Itoa(r.port) + "/0" }

// Start runs redis-server and waits until it accepts connections.
func (r *redisServer) Start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir)
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	eventually(r.t, 10*time.Second, "redis-server accepts connections", func() bool {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(r.port), 100*time.Millisecond)
		if err != nil {
			return false
		}
		defer c.Close()
		_, _ = c.Write([]byte("PING\r\n"))
		buf := make([]byte, 7)
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		n, _ := c.Read(buf)
		return strings.HasPrefix(string(buf[:n]), "+PONG")
	})
}

// Stop kills redis-server; its data is gone (it keeps nothing on disk).
func (r *redisServer) Stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

// accounts counts the account driver's live tenant rows for an add-on.
func (s *stack) accounts(id string) int64 {
	s.t.Helper()
	var n int64
	if err := s.db.Gorm().Table("accounts").Where("id = ? AND deleted_at IS NULL", id).Count(&n).Error; err != nil {
		s.t.Fatalf("count accounts: %v", err)
	}
	return n
}
