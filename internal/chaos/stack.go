package chaos

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kiln-dev/kiln/internal/faultkit"
	"github.com/kiln-dev/kiln/internal/herokusim"
	"github.com/kiln-dev/kiln/internal/postgres"
	"github.com/kiln-dev/kiln/internal/secret"
)

// The credentials the run's Kiln is configured with, as Heroku would hold
// them. The admin password is at least 32 characters, as Kiln demands.
const (
	addonID       = "kiln-chaos"
	addonPassword = "chaos-partner-password-0123456789abcdef"
	adminPassword = "chaos-admin-password-0123456789abcdef"
	clientSecret  = "chaos-oauth-client-secret"
	configPrefix  = "KILN_CHAOS"
)

// AdminURL is the Postgres server the run creates its database on:
// KILN_TEST_DATABASE_URL, as for the tests, or the machine's default.
func AdminURL() string {
	if v := os.Getenv("KILN_TEST_DATABASE_URL"); v != "" {
		return v
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// stack is one Kiln deployment under chaos: several web and worker
// processes, their own database and Redis, the simulator, and the proxies
// the faults go through.
type stack struct {
	o     Options
	round Round
	dir   string

	kit    *faultkit.Kit
	pg     *faultkit.Proxy            // Kiln → Postgres
	rproxy *faultkit.Proxy            // Kiln → Redis (plain round)
	heroku map[string]*faultkit.Proxy // each Kiln process → the simulator
	redis  *faultkit.Redis
	group  *faultkit.SentinelGroup

	sim     *herokusim.Sim
	simSrvs []*httptest.Server
	callers callers // simulator request id → the Kiln process that called

	database *faultkit.Database
	db       *postgres.DB // the checker's own connection, not through the proxy
	env      []string

	mu    sync.Mutex
	kills map[string][]time.Time // process → when it was SIGKILLed
	procs map[string]*exec.Cmd
	ports map[string]int // web name → port
	webs  []string
	works []string
}

// startStack builds the deployment for one round and starts every process.
func startStack(ctx context.Context, o Options, round Round, dir string) (_ *stack, err error) {
	s := &stack{o: o, round: round, dir: dir, kit: faultkit.New(), procs: map[string]*exec.Cmd{}, ports: map[string]int{},
		heroku: map[string]*faultkit.Proxy{}, kills: map[string][]time.Time{}, callers: callers{ids: map[string]string{}}}
	defer func() {
		if err != nil {
			s.close()
		}
	}()

	// Postgres: a database of the run's own, reached through a proxy.
	if s.database, err = faultkit.CreateDatabase(ctx, AdminURL(), "kiln_chaos"); err != nil {
		return nil, err
	}
	viaProxy, err := url.Parse(s.database.URL)
	if err != nil {
		return nil, err
	}
	if s.pg, err = s.kit.Proxy("postgres", viaProxy.Host); err != nil {
		return nil, err
	}
	viaProxy.Host = s.pg.Addr()

	// Redis: one server behind a proxy, or a Sentinel group.
	var redisURL string
	switch round {
	case RoundSentinel:
		if s.group, err = faultkit.StartSentinelGroup(dir, "kiln", o.sentinelDownAfter()); err != nil {
			return nil, err
		}
		redisURL = s.group.URL(0)
	default:
		if s.redis, err = faultkit.StartRedis(dir, 0); err != nil {
			return nil, err
		}
		if s.rproxy, err = s.kit.Proxy("redis", s.redis.Addr()); err != nil {
			return nil, err
		}
		redisURL = "redis://" + s.rproxy.Addr() + "/0"
	}

	// The simulator, far away: every answer 100–300 ms late. Each Kiln
	// process reaches it through its own proxy and port, so the checker
	// knows which process made each call (and whether it was killed before
	// it could record the answer).
	s.sim = herokusim.New(herokusim.Options{ClientSecret: clientSecret})
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	keys, err := secret.New([][]byte{key})
	if err != nil {
		return nil, err
	}
	s.env = append(os.Environ(),
		"DATABASE_URL="+viaProxy.String(),
		"REDIS_URL="+redisURL,
		"ADDON_ID="+addonID,
		"ADDON_PASSWORD="+addonPassword,
		"ADDON_SSO_SALT=chaos-sso-salt",
		"ADDON_CONFIG_PREFIX="+configPrefix,
		"HEROKU_OAUTH_CLIENT_SECRET="+clientSecret,
		"ENCRYPTION_KEY="+base64.StdEncoding.EncodeToString(key),
		"ADMIN_PASSWORD="+adminPassword,
		"PUBLIC_URL=https://kiln-chaos.example.com",
		"LOG_LEVEL=info",
		// The reconciler looks often, so work lost to a fault is found
		// within the run (production: 30 s and 2 min).
		"RECONCILE_INTERVAL=2s",
		"RECONCILE_AFTER=5s",
		// Five processes share the machine's Postgres with other tests.
		"DATABASE_POOL_SIZE=4",
	)
	s.env = append(s.env, o.Env...)

	release := exec.Command(filepath.Join(o.Bin, "release"))
	release.Env = s.env
	if out, err := release.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("release: %v\n%s", err, out)
	}
	if s.db, err = postgres.Open(ctx, s.database.URL, keys); err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}

	for i := 1; i <= o.Webs; i++ {
		name := "web." + strconv.Itoa(i)
		port, err := faultkit.FreePort()
		if err != nil {
			return nil, err
		}
		s.ports[name] = port
		s.webs = append(s.webs, name)
	}
	for i := 1; i <= o.Workers; i++ {
		s.works = append(s.works, "worker."+strconv.Itoa(i))
	}
	for _, name := range append(append([]string{}, s.webs...), s.works...) {
		srv := httptest.NewServer(s.callers.tag(name, s.sim))
		s.simSrvs = append(s.simSrvs, srv)
		px, err := s.kit.Proxy("heroku-"+name, strings.TrimPrefix(srv.URL, "http://"))
		if err != nil {
			return nil, err
		}
		if o.has(FaultHerokuLatency) {
			if err := px.Latency(200, 100); err != nil {
				return nil, err
			}
		}
		s.heroku[name] = px
	}
	for _, name := range append(append([]string{}, s.webs...), s.works...) {
		if err := s.start(name); err != nil {
			return nil, err
		}
	}
	for _, name := range s.webs {
		if err := s.waitHealthy(ctx, name, 30*time.Second); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// start runs a Kiln process ("web.N" or "worker.N"), as a dyno would.
func (s *stack) start(name string) error {
	kind, _, _ := strings.Cut(name, ".")
	cmd := exec.Command(filepath.Join(s.o.Bin, kind))
	cmd.SysProcAttr = faultkit.SysProcAttr()
	herokuURL := "http://" + s.heroku[name].Addr()
	cmd.Env = append(append([]string{}, s.env...), "DYNO="+name, "HEROKU_API_URL="+herokuURL, "HEROKU_ID_URL="+herokuURL)
	if port, ok := s.ports[name]; ok {
		cmd.Env = append(cmd.Env, "PORT="+strconv.Itoa(port))
	}
	log, err := os.OpenFile(filepath.Join(s.dir, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	s.mu.Lock()
	s.procs[name] = cmd
	s.mu.Unlock()
	return nil
}

// kill SIGKILLs a process: it gets no chance to finish or hand back work.
func (s *stack) kill(name string) bool {
	s.mu.Lock()
	cmd := s.procs[name]
	delete(s.procs, name)
	s.mu.Unlock()
	if cmd == nil {
		return false
	}
	_ = cmd.Process.Kill()
	s.mu.Lock()
	s.kills[name] = append(s.kills[name], time.Now())
	s.mu.Unlock()
	_ = cmd.Wait()
	return true
}

// running reports whether the process is up (as far as the run knows).
func (s *stack) running(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.procs[name] != nil
}

// ensureRunning restarts every process a fault left down.
func (s *stack) ensureRunning() error {
	for _, name := range append(append([]string{}, s.webs...), s.works...) {
		if !s.running(name) {
			if err := s.start(name); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *stack) waitHealthy(ctx context.Context, name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	url := s.webURL(name) + "/healthz"
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s did not answer /healthz within %s (log: %s)", name, timeout, filepath.Join(s.dir, name+".log"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *stack) webURL(name string) string {
	return "http://127.0.0.1:" + strconv.Itoa(s.ports[name])
}

// stop ends every process: SIGTERM, then SIGKILL for what is still up
// after a few seconds (the run has checked already; draining is tested
// elsewhere).
func (s *stack) stop() {
	s.mu.Lock()
	procs := s.procs
	s.procs = map[string]*exec.Cmd{}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, cmd := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		}()
	}
	wg.Wait()
}

func (s *stack) close() {
	s.stop()
	if s.sim != nil {
		s.sim.Close()
	}
	for _, srv := range s.simSrvs {
		srv.CloseClientConnections()
		srv.Close()
	}
	s.kit.Close()
	if s.group != nil {
		s.group.Close()
	}
	if s.redis != nil {
		s.redis.Kill()
	}
	if s.db != nil {
		s.db.Close()
	}
	if s.database != nil {
		_ = s.database.Drop(context.Background())
	}
}

// tail returns the last lines of each process's log, for a failed run.
func (s *stack) tail(lines int) string {
	names, _ := filepath.Glob(filepath.Join(s.dir, "*.log"))
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		raw, err := os.ReadFile(n)
		if err != nil {
			continue
		}
		ls := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
		if len(ls) > lines {
			ls = ls[len(ls)-lines:]
		}
		fmt.Fprintf(&b, "--- %s (last %d lines) ---\n%s\n", filepath.Base(n), len(ls), strings.Join(ls, "\n"))
	}
	return b.String()
}

// killedWithin reports whether the process was SIGKILLed in [from, to].
func (s *stack) killedWithin(name string, from, to time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.kills[name] {
		if !t.Before(from) && !t.After(to) {
			return true
		}
	}
	return false
}

// callers remembers which Kiln process made each simulator call, by the
// Request-Id the simulator answered with.
type callers struct {
	mu  sync.Mutex
	ids map[string]string
}

func (c *callers) tag(name string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&tagWriter{ResponseWriter: w, c: c, name: name}, r)
	})
}

// who is the process that made the call with this request id, or "".
func (c *callers) who(requestID string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ids[requestID]
}

type tagWriter struct {
	http.ResponseWriter
	c    *callers
	name string
	done bool
}

func (t *tagWriter) WriteHeader(code int) {
	t.note()
	t.ResponseWriter.WriteHeader(code)
}

func (t *tagWriter) Write(b []byte) (int, error) {
	t.note()
	return t.ResponseWriter.Write(b)
}

func (t *tagWriter) note() {
	if t.done {
		return
	}
	t.done = true
	if id := t.Header().Get("Request-Id"); id != "" {
		t.c.mu.Lock()
		t.c.ids[id] = t.name
		t.c.mu.Unlock()
	}
}
