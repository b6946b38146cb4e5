package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	"github.com/redis/go-redis/v9"

	"github.com/kiln-dev/kiln/internal/faultkit"
	"github.com/kiln-dev/kiln/internal/herokusim"
	"github.com/kiln-dev/kiln/internal/postgres"
)

// Credentials of the benchmark deployment; nothing outside loopback sees them.
const (
	addonID       = "kiln-bench"
	password      = "bench-password-0123456789abcdef"
	adminPassword = "bench-admin-password-0123456789abcdef"
	clientSecret  = "bench-oauth-client-secret"
)

// stack is one private Kiln deployment: database, Redis, simulator, and the
// web and worker processes.
type stack struct {
	o    options
	sz   sizes
	logf func(string, ...any)

	database *faultkit.Database
	db       *sql.DB // the bench's own connection to the benchmark database

	redis     *faultkit.Redis
	redisDir  string
	redisAddr string
	rdb       *redis.Client

	sim    *herokusim.Sim
	simSrv *http.Server
	simURL string
	calls  *callLog

	logDir      string
	env         []string
	webURL      string
	workerDebug string
	procs       map[string]*proc
	mu          sync.Mutex
	hwm         map[string]int64 // peak VmHWM in kB per process name, across restarts
	baselinePid int
	failed      bool
}

// proc is a running child process and its log.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan error
}

func newStack(ctx context.Context, o options, sz sizes, logf func(string, ...any)) (st *stack, err error) {
	// The deferred clean-up holds its own pointer: a failed return sets st
	// to nil.
	s := &stack{o: o, sz: sz, logf: logf, procs: map[string]*proc{}, hwm: map[string]int64{}}
	st = s
	defer func() {
		if err != nil {
			s.failed = true
			_ = s.Close()
		}
	}()
	for _, name := range []string{"web", "worker"} {
		if _, err := os.Stat(filepath.Join(o.bin, name)); err != nil {
			return nil, fmt.Errorf("%s not built (run `make build` or pass -bin): %w", filepath.Join(o.bin, name), err)
		}
	}
	if st.logDir, err = os.MkdirTemp("", "kiln-bench-logs-"); err != nil {
		return nil, err
	}
	if err := st.startPostgres(ctx); err != nil {
		return nil, err
	}
	logf("database %s migrated", st.database.Name)
	if err := st.startRedis(); err != nil {
		return nil, err
	}
	logf("redis-server on %s", st.redisAddr)
	if err := st.startSim(); err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	webPort, err := faultkit.FreePort()
	if err != nil {
		return nil, err
	}
	debugPort, err := faultkit.FreePort()
	if err != nil {
		return nil, err
	}
	st.webURL = "http://127.0.0.1:" + strconv.Itoa(webPort)
	st.workerDebug = "127.0.0.1:" + strconv.Itoa(debugPort)
	st.env = append(os.Environ(),
		"PORT="+strconv.Itoa(webPort),
		"DATABASE_URL="+st.database.URL,
		"REDIS_URL=redis://"+st.redisAddr+"/0",
		"ADDON_ID="+addonID,
		"ADDON_PASSWORD="+password,
		"ADDON_SSO_SALT=bench-sso-salt",
		"ADDON_CONFIG_PREFIX=KILN_BENCH",
		"HEROKU_OAUTH_CLIENT_SECRET="+clientSecret,
		"HEROKU_API_URL="+st.simURL,
		"HEROKU_ID_URL="+st.simURL,
		"ENCRYPTION_KEY="+base64.StdEncoding.EncodeToString(key),
		"ADMIN_PASSWORD="+adminPassword,
		"PUBLIC_URL=https://kiln-bench.example.com",
		"RESOURCE_DRIVER=account",
		"LOG_LEVEL=info",
		"WORKER_CONCURRENCY="+strconv.Itoa(sz.Concurrency),
		"WORKER_DEBUG_ADDR="+st.workerDebug,
		"RESOURCE_DRIVER_DELAY=",
		"DYNO=",
	)
	st.env = append(st.env, o.env...)
	if err := st.start(ctx, "web"); err != nil {
		return nil, err
	}
	logf("web on %s", st.webURL)
	return st, nil
}

// adminDatabaseURL is the Postgres server the benchmark database is made on.
func adminDatabaseURL() string {
	for _, k := range []string{"KILN_BENCH_DATABASE_URL", "KILN_TEST_DATABASE_URL"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

func (st *stack) startPostgres(ctx context.Context) (err error) {
	if st.database, err = faultkit.CreateDatabase(ctx, adminDatabaseURL(), "kiln_bench"); err != nil {
		return err
	}
	if err := postgres.Migrate(ctx, st.database.URL); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if st.db, err = sql.Open("pgx", st.database.URL); err != nil {
		return err
	}
	st.db.SetMaxOpenConns(4)
	_, err = st.db.ExecContext(ctx, `CREATE TABLE bench_baseline (
		id uuid PRIMARY KEY, body bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`)
	return err
}

// startRedis runs the bench's own redis-server, keeping nothing on disk;
// it answers PING before this returns.
func (st *stack) startRedis() (err error) {
	if st.redisDir, err = os.MkdirTemp("", "kiln-bench-redis-"); err != nil {
		return err
	}
	if st.redis, err = faultkit.StartRedis(st.redisDir, 0); err != nil {
		return err
	}
	st.redisAddr = st.redis.Addr()
	st.rdb = redis.NewClient(&redis.Options{Addr: st.redisAddr})
	return nil
}

func (st *stack) startSim() error {
	st.calls = newCallLog()
	st.sim = herokusim.New(herokusim.Options{
		ClientSecret: clientSecret,
		NoRateLimit:  true,
		MaxCalls:     10000, // the bench reads calls through OnCall, not the log
		OnCall:       st.calls.record,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	st.simURL = "http://" + ln.Addr().String()
	st.simSrv = &http.Server{Handler: st.sim, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = st.simSrv.Serve(ln) }()
	return nil
}

// start runs bin/<name> with the stack's environment (plus extra) and waits
// until it is ready: web answers /healthz, worker has registered its asynq
// servers in Redis.
func (st *stack) start(ctx context.Context, name string, extra ...string) error {
	f, err := os.OpenFile(filepath.Join(st.logDir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(st.o.bin, name))
	cmd.Env = append(append([]string(nil), st.env...), extra...)
	cmd.Stdout, cmd.Stderr = f, f // files, not pipes: no copying goroutine in the bench process
	cmd.SysProcAttr = faultkit.SysProcAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: f, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	st.mu.Lock()
	st.procs[name] = p
	st.mu.Unlock()

	ready := func() bool {
		select {
		case <-p.done:
			return false
		default:
		}
		if name == "web" {
			resp, err := http.Get(st.webURL + "/healthz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		}
		n, err := st.rdb.ZCard(ctx, "asynq:servers").Result()
		return err == nil && n >= 2
	}
	if err := waitFor(ctx, 20*time.Second, name+" is ready", ready); err != nil {
		return fmt.Errorf("%w\n%s", err, st.tail(name))
	}
	return nil
}

// stop sends SIGTERM and waits for the process to drain, recording its
// peak RSS first.
func (st *stack) stop(name string) error {
	st.mu.Lock()
	p := st.procs[name]
	delete(st.procs, name)
	st.mu.Unlock()
	if p == nil {
		return nil
	}
	st.notePeak(name, p.cmd.Process.Pid)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	defer p.log.Close()
	select {
	case err := <-p.done:
		if err != nil {
			return fmt.Errorf("%s exited with %v after SIGTERM", name, err)
		}
		return nil
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not exit within 30 s of SIGTERM", name)
	}
}

// pid is the process id of a running child, or 0.
func (st *stack) pid(name string) int {
	st.mu.Lock()
	defer st.mu.Unlock()
	if p := st.procs[name]; p != nil {
		return p.cmd.Process.Pid
	}
	return 0
}

// notePeak reads the process's VmHWM (the kernel's high-water mark of its
// resident set) and keeps the largest seen for that name.
func (st *stack) notePeak(name string, pid int) {
	kb := vmHWM(pid)
	st.mu.Lock()
	defer st.mu.Unlock()
	if kb > st.hwm[name] {
		st.hwm[name] = kb
	}
}

// peak is the largest VmHWM seen for a process name, reading the running
// process too.
func (st *stack) peak(name string) int64 {
	if pid := st.pid(name); pid != 0 {
		st.notePeak(name, pid)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.hwm[name]
}

func vmHWM(pid int) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// tail returns the end of a process's log, for error messages.
func (st *stack) tail(name string) string {
	b, err := os.ReadFile(filepath.Join(st.logDir, name+".log"))
	if err != nil {
		return ""
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return "--- " + name + " log (end) ---\n" + string(b)
}

// reset empties the add-on tables and this stack's private Redis between
// phases, so one phase's leftovers do not load the next. FLUSHALL is safe
// here: the redis-server is the bench's own.
func (st *stack) reset(ctx context.Context) error {
	if _, err := st.db.ExecContext(ctx, "TRUNCATE addons, addon_events, addon_links, addon_webhook_events, accounts, bench_baseline"); err != nil {
		return fmt.Errorf("truncate: %w", err)
	}
	if _, err := st.db.ExecContext(ctx, "VACUUM ANALYZE"); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	if err := st.rdb.FlushAll(ctx).Err(); err != nil {
		return fmt.Errorf("flush the bench's redis: %w", err)
	}
	st.calls.reset()
	return nil
}

// Close stops everything the stack started and drops the database.
func (st *stack) Close() error {
	var errs []error
	for _, name := range []string{"worker", "web"} {
		if err := st.stop(name); err != nil {
			errs = append(errs, err)
		}
	}
	if st.failed {
		for _, name := range []string{"web", "worker"} {
			if t := st.tail(name); t != "" {
				fmt.Fprintln(os.Stderr, t)
			}
		}
	}
	if st.simSrv != nil {
		st.sim.Close()
		_ = st.simSrv.Close()
	}
	if st.rdb != nil {
		_ = st.rdb.Close()
	}
	if st.redis != nil {
		st.redis.Kill()
	}
	if st.redisDir != "" {
		_ = os.RemoveAll(st.redisDir)
	}
	if st.db != nil {
		_ = st.db.Close()
	}
	if st.database != nil {
		if err := st.database.Drop(context.Background()); err != nil {
			errs = append(errs, err)
		}
	}
	if st.logDir != "" {
		if st.o.keepLogs || st.failed {
			st.logf("logs kept in %s", st.logDir)
		} else {
			_ = os.RemoveAll(st.logDir)
		}
	}
	return errors.Join(errs...)
}

// waitFor polls cond until it holds, ctx ends or the limit passes.
func waitFor(ctx context.Context, limit time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting %s for %s: %w", limit, what, errTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// callLog timestamps the simulator's successful grant exchanges and
// provision actions per add-on, through the simulator's OnCall hook.
type callLog struct {
	mu        sync.Mutex
	grant     map[string]time.Time
	provision map[string]time.Time
}

func newCallLog() *callLog {
	return &callLog{grant: map[string]time.Time{}, provision: map[string]time.Time{}}
}

func (l *callLog) record(c herokusim.Call) {
	if c.Status/100 != 2 || c.AddonID == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.of(c.Kind)
	if m == nil {
		return
	}
	if _, seen := m[c.AddonID]; !seen {
		m[c.AddonID] = c.At
	}
}

// of is the log of kind's calls (nil for a kind not logged); the caller
// holds mu.
func (l *callLog) of(kind string) map[string]time.Time {
	switch kind {
	case herokusim.KindGrant:
		return l.grant
	case herokusim.KindProvision:
		return l.provision
	}
	return nil
}

func (l *callLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.grant = map[string]time.Time{}
	l.provision = map[string]time.Time{}
}

// times returns when each of ids was seen for kind (zero when not yet) and
// how many were seen.
func (l *callLog) times(kind string, ids []string) ([]time.Time, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.of(kind)
	out := make([]time.Time, len(ids))
	n := 0
	for i, id := range ids {
		if t, ok := m[id]; ok {
			out[i] = t
			n++
		}
	}
	return out, n
}

// waitAll waits up to limit for a call of kind for every add-on of ids.
// It polls what it waits for every 50 ms on the machine it measures, under
// the lock the simulator's hook takes on every call, so each poll costs
// what is left to find, not the phase: nothing while fewer calls than ids
// are logged (a count), then only the ids not found yet.
func (l *callLog) waitAll(ctx context.Context, limit time.Duration, what, kind string, ids []string) error {
	pending := slices.Clone(ids)
	return waitFor(ctx, limit, what, func() bool {
		if l.count(kind) < len(ids) {
			return false
		}
		pending = l.missing(kind, pending)
		return len(pending) == 0
	})
}

// missing is pending less the add-ons with a call of kind, in pending's
// array.
func (l *callLog) missing(kind string, pending []string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.of(kind)
	return slices.DeleteFunc(pending, func(id string) bool {
		_, ok := m[id]
		return ok
	})
}

func (l *callLog) count(kind string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.of(kind))
}
