package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/kiln-dev/kiln/internal/kilntest"
)

// reachable makes the test's temporary directories traversable by others:
// a root kiln-dev runs Postgres as the postgres user, which must reach the
// data directory (t.TempDir makes private directories).
func reachable(t *testing.T, dir string) {
	t.Helper()
	for d := dir; d != os.TempDir() && d != "/" && d != "."; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOwnServices starts Postgres and Redis the way kiln-dev does when
// none is running, checks they answer, stops them, and starts Postgres again
// on the data it kept.
func TestOwnServices(t *testing.T) {
	if _, err := findPostgres(pgSearchPath(), ""); err != nil {
		kilntest.SkipMissing(t, "PostgreSQL server binaries are not installed: "+err.Error())
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		kilntest.SkipMissing(t, "redis-server is not installed (sudo apt-get install -y redis-server)")
	}
	dir := filepath.Join(t.TempDir(), ".dev")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	reachable(t, filepath.Dir(dir))
	var out bytes.Buffer
	var mu sync.Mutex
	con := newConsole(lockedWriter{&mu, &out})
	sup := newSupervisor(con, os.Environ())
	ctx := context.Background()
	pgPort, redisPort := freePort(t), freePort(t)

	pg, err := ensurePostgres(ctx, sup, dir, "postgres://postgres@127.0.0.1:"+strconv.Itoa(pgPort)+"/kiln_dev?sslmode=disable")
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if pg == nil {
		t.Fatal("ensurePostgres reused a server on a free port")
	}
	t.Cleanup(func() { pg.stop(serviceGrace) })
	rd, err := ensureRedis(ctx, sup, dir, "redis://127.0.0.1:"+strconv.Itoa(redisPort)+"/0")
	if err != nil || rd == nil {
		t.Fatalf("ensureRedis = %v, %v\n%s", rd, err, out.String())
	}
	t.Cleanup(func() { rd.stop(serviceGrace) })

	dbURL := "postgres://postgres@127.0.0.1:" + strconv.Itoa(pgPort) + "/kiln_dev?sslmode=disable"
	if created, err := ensureDatabase(ctx, dbURL); err != nil || !created {
		t.Fatalf("ensureDatabase = %v, %v", created, err)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(redisPort)})
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	rdb.Close()

	stopAll(serviceGrace, rd, pg)
	for _, c := range []*child{pg, rd} {
		if err := syscall.Kill(c.cmd.Process.Pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s (pid %d) still running after stop: %v", c.name, c.cmd.Process.Pid, err)
		}
	}

	// Second start: the data directory is reused, the database is there.
	mu.Lock()
	out.Reset()
	mu.Unlock()
	pg2, err := ensurePostgres(ctx, sup, dir, dbURL)
	if err != nil || pg2 == nil {
		t.Fatalf("restart: %v", err)
	}
	t.Cleanup(func() { pg2.stop(serviceGrace) })
	mu.Lock()
	initialised := strings.Contains(out.String(), "initialising")
	mu.Unlock()
	if initialised {
		t.Error("the second start initialised a new data directory")
	}
	if created, err := ensureDatabase(ctx, dbURL); err != nil || created {
		t.Fatalf("after restart ensureDatabase = %v, %v; want the kept database", created, err)
	}
}

// TestStack runs the real kiln-dev binary against the already-running test
// Postgres and Redis: it must bring up web, worker and the simulator, a
// provision through kiln-heroku must reach provisioned, the conformance
// check must pass through the CLI, and SIGTERM must stop every process it
// started.
func TestStack(t *testing.T) {
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "./cmd/release", "./cmd/web", "./cmd/worker", "./cmd/kiln-dev", "./cmd/kiln-heroku")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dir := filepath.Join(t.TempDir(), "dev")
	port, simPort := freePort(t), freePort(t)
	sim := "http://127.0.0.1:" + strconv.Itoa(simPort)
	env := append(os.Environ(),
		"PORT="+strconv.Itoa(port),
		"DATABASE_URL="+kilntest.Postgres(t),
		"REDIS_URL="+kilntest.Redis(t),
		"HEROKU_API_URL="+sim,
		"HEROKU_ID_URL="+sim,
		"NO_COLOR=1",
	)
	cmd := exec.Command(filepath.Join(bin, "kiln-dev"), "--dir", dir, "--bin", bin)
	cmd.Env = env
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill() // Pdeathsig takes the children down
			<-exited
		}
		if t.Failed() {
			t.Logf("kiln-dev output:\n%s", out.String())
		}
	})

	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "Kiln is running.") {
		select {
		case err := <-exited:
			t.Fatalf("kiln-dev exited during start-up: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("kiln-dev did not come up within 60 s")
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "env")); err != nil {
		t.Fatalf("no generated env file: %v", err)
	}

	provision := exec.Command(filepath.Join(bin, "kiln-heroku"), "provision", "--env-file", filepath.Join(dir, "env"), "--plan", "test", "--timeout", "30s")
	provision.Env = env
	var pout, perr bytes.Buffer
	provision.Stdout, provision.Stderr = &pout, &perr
	if err := provision.Run(); err != nil {
		t.Fatalf("kiln-heroku provision: %v\nstdout: %s\nstderr: %s", err, pout.String(), perr.String())
	}
	id := strings.TrimSpace(pout.String())
	if !regexp.MustCompile(`^[0-9a-f-]{36}$`).MatchString(id) || !strings.Contains(perr.String(), "provisioned; config vars") {
		t.Fatalf("provision printed %q / %s", id, perr.String())
	}
	status := exec.Command(filepath.Join(bin, "kiln-heroku"), "status", id, "--env-file", filepath.Join(dir, "env"))
	status.Env = env
	sout, err := status.CombinedOutput()
	if err != nil || !strings.Contains(string(sout), "state   provisioned") {
		t.Fatalf("status: %v\n%s", err, sout)
	}

	// kiln-heroku shows what both sides say: after a plan change and right
	// after a deprovision, Heroku's record and Kiln's agree.
	kh := func(args ...string) (string, error) {
		c := exec.Command(filepath.Join(bin, "kiln-heroku"), append(args, "--env-file", filepath.Join(dir, "env"))...)
		c.Env = env
		b, err := c.CombinedOutput()
		return string(b), err
	}
	if o, err := kh("plan-change", id, "basic"); err != nil {
		t.Fatalf("plan-change: %v\n%s", err, o)
	}
	// A plan change that finds the add-on's writer busy (the webhook
	// subscription that follows a provision) answers 202 and finishes in
	// the background: wait for Kiln's record to agree.
	for until := time.Now().Add(30 * time.Second); ; {
		o, err := kh("status", id)
		if err == nil && regexp.MustCompile(`(?m)^plan\s+basic\s+basic$`).MatchString(o) {
			break
		}
		if time.Now().After(until) {
			t.Fatalf("status after the plan change: %v\n%s", err, o)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if o, err := kh("deprovision", id); err != nil {
		t.Fatalf("deprovision: %v\n%s", err, o)
	}
	if o, err := kh("status", id); err != nil || !regexp.MustCompile(`(?m)^state\s+deprovisioned\s+deprovision(ing|ed)\b`).MatchString(o) {
		t.Fatalf("status right after deprovision: %v\n%s", err, o)
	}
	deprovisioned := regexp.MustCompile(`(?m)^state\s+deprovisioned\s+deprovisioned\b`)
	for o, _ := kh("status", id); !deprovisioned.MatchString(o); o, _ = kh("status", id) {
		if time.Now().After(deadline.Add(60 * time.Second)) {
			t.Fatalf("Kiln never said deprovisioned:\n%s", o)
		}
		time.Sleep(200 * time.Millisecond)
	}

	check := exec.Command(filepath.Join(bin, "kiln-heroku"), "check", "--env-file", filepath.Join(dir, "env"), "--timeout", "30s")
	check.Env = env
	if cout, err := check.CombinedOutput(); err != nil {
		t.Fatalf("kiln-heroku check against the dev stack: %v\n%s", err, cout)
	}

	pids := startedPIDs(t, out.String())
	for _, name := range []string{"release", "web", "worker"} {
		if pids[name] == 0 {
			t.Fatalf("kiln-dev did not report starting %s", name)
		}
	}
	if pids["postgres"] != 0 || pids["redis"] != 0 {
		t.Fatalf("kiln-dev started its own servers although the test's were running: %v", pids)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("kiln-dev exited with %v after SIGTERM", err)
		}
	case <-time.After(45 * time.Second):
		t.Fatal("kiln-dev did not stop within 45 s of SIGTERM")
	}
	for _, name := range []string{"web", "worker"} {
		if err := syscall.Kill(pids[name], 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s (pid %d) still running after kiln-dev stopped: %v", name, pids[name], err)
		}
	}
	if !strings.Contains(out.String(), "kiln-dev | stopped") {
		t.Error("kiln-dev did not report stopping")
	}
	if _, err := os.Stat(filepath.Join(dir, "sim.json")); err != nil {
		t.Fatalf("the simulator's state was not saved: %v", err)
	}

	// Run it again, with its output piped to a reader that goes away (make
	// dev | tee log, then Ctrl-C kills tee): the add-on is still known to
	// both sides, and the stop still drains every process.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	again := exec.Command(filepath.Join(bin, "kiln-dev"), "--dir", dir, "--bin", bin)
	again.Env = env
	again.Stdout, again.Stderr = w, w
	if err := again.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	exited2 := make(chan error, 1)
	go func() { exited2 <- again.Wait() }()
	t.Cleanup(func() {
		if again.ProcessState == nil {
			_ = again.Process.Kill()
			<-exited2
		}
	})
	var seen bytes.Buffer
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		seen.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "Kiln is running.") {
			break
		}
	}
	if !strings.Contains(seen.String(), "restored") {
		t.Errorf("the second run did not restore the simulator:\n%s", seen.String())
	}
	if o, err := kh("status", id); err != nil || !deprovisioned.MatchString(o) || !regexp.MustCompile(`(?m)^plan\s+basic\s+basic$`).MatchString(o) {
		t.Fatalf("status after a restart: %v\n%s", err, o)
	}
	if o, err := kh("status"); err != nil || !regexp.MustCompile(id+`\s+deprovisioned basic\s+deprovisioned basic`).MatchString(o) {
		t.Fatalf("status (all) after a restart: %v\n%s", err, o)
	}
	pids = startedPIDs(t, seen.String())
	r.Close() // the reader dies
	if err := again.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited2:
		if err != nil {
			t.Fatalf("kiln-dev with a dead output pipe exited with %v after SIGTERM, want a clean stop", err)
		}
	case <-time.After(45 * time.Second):
		t.Fatal("kiln-dev with a dead output pipe did not stop within 45 s of SIGTERM")
	}
	for _, name := range []string{"web", "worker"} {
		if pids[name] == 0 {
			t.Fatalf("the second run did not report starting %s", name)
		}
		if err := syscall.Kill(pids[name], 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s (pid %d) still running after kiln-dev stopped: %v", name, pids[name], err)
		}
	}
}

// startedPIDs reads "started NAME (pid N)" lines.
func startedPIDs(t *testing.T, out string) map[string]int {
	t.Helper()
	re := regexp.MustCompile(`started (\S+) \(pid (\d+)\)`)
	pids := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			pids[m[1]], _ = strconv.Atoi(m[2])
		}
	}
	return pids
}

func TestMissingBinaries(t *testing.T) {
	var out bytes.Buffer
	code := run(make(chan os.Signal), []string{"--dir", t.TempDir(), "--bin", t.TempDir()}, noEnv, &out, io.Discard)
	if code != 1 || !strings.Contains(out.String(), "make build") {
		t.Fatalf("exit %d, output %q; want 1 and a build hint", code, out.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
