package conformance

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/asheroku"
	"github.com/kiln-dev/kiln/internal/herokusim"
	"github.com/kiln-dev/kiln/internal/kilntest"
)

// bin holds the Kiln commands, built once for the tests that run a real
// Kiln; TestMain removes it.
var (
	bin      string
	buildErr error
	buildOut []byte
	built    sync.Once
)

func TestMain(m *testing.M) {
	code := m.Run()
	if bin != "" {
		os.RemoveAll(bin)
	}
	os.Exit(code)
}

// buildKiln builds release, web and worker once per test binary.
func buildKiln(t *testing.T) {
	t.Helper()
	built.Do(func() {
		bin, buildErr = os.MkdirTemp("", "kiln-conformance-bin")
		if buildErr != nil {
			return
		}
		build := exec.Command("go", "build", "-o", bin+"/", "./cmd/release", "./cmd/web", "./cmd/worker")
		build.Dir = filepath.Join("..", "..")
		buildOut, buildErr = build.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("build Kiln: %v\n%s", buildErr, buildOut)
	}
}

// TestRealKiln runs every check against Kiln's own web and worker processes
// (real Postgres, real Redis) talking to an in-process simulator: all must
// pass.
func TestRealKiln(t *testing.T) {
	tests := []struct {
		name  string
		async bool
		want  int
	}{
		{"default", false, 25},
		{"async deprovisioning", true, 26},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { realKiln(t, tt.async, tt.want) })
	}
}

func realKiln(t *testing.T, async bool, want int) {
	const (
		id     = "kiln-conf"
		pw     = "conformance-password-0123456789ab"
		salt   = "conformance-sso-salt-0123456789ab"
		secret = "conformance-oauth-client-secret"
	)
	buildKiln(t)
	_, simSrv := herokusim.NewServer(t, herokusim.Options{ClientSecret: secret})
	port := freePort(t)
	env := append(os.Environ(),
		"PORT="+strconv.Itoa(port),
		"DATABASE_URL="+kilntest.Postgres(t),
		"REDIS_URL="+kilntest.Redis(t),
		"ADDON_ID="+id,
		"ADDON_PASSWORD="+pw,
		"ADDON_SSO_SALT="+salt,
		"HEROKU_OAUTH_CLIENT_SECRET="+secret,
		"HEROKU_API_URL="+simSrv.URL,
		"HEROKU_ID_URL="+simSrv.URL,
		"ENCRYPTION_KEY="+kilntest.Key(),
		"ADMIN_PASSWORD=conformance-admin-password-0123456789",
		"RESOURCE_DRIVER=account",
		"ASYNC_DEPROVISION="+strconv.FormatBool(async),
	)
	kilnURL := "http://127.0.0.1:" + strconv.Itoa(port)
	run(t, env, "release")
	procs := &processes{t: t, env: env}
	procs.start("web")
	procs.start("worker")
	t.Cleanup(procs.stopAll)
	waitHealthy(t, kilnURL)

	report := Run(context.Background(), Options{
		Kiln:             asheroku.NewKiln(kilnURL, id, pw),
		Sim:              asheroku.NewSim(simSrv.URL),
		SSOSalt:          salt,
		ConfigVars:       []string{"KILN_CONF_URL"},
		Webhooks:         true, // PUBLIC_URL defaults to http://localhost:$PORT, which the simulator reaches
		LogStream:        true,
		AsyncDeprovision: async,
	})
	var b bytes.Buffer
	_ = report.WriteTable(&b)
	if !report.OK() {
		t.Errorf("conformance failed against a real Kiln:\n%s", b.String())
		procs.dumpLogs()
	} else {
		t.Logf("\n%s", b.String())
	}
	if len(report.Results) != want {
		t.Errorf("ran %d checks, want %d", len(report.Results), want)
	}
}

func run(t *testing.T, env []string, name string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, name))
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
}

type processes struct {
	t     *testing.T
	env   []string
	mu    sync.Mutex
	cmds  []*exec.Cmd
	names []string
	logs  []*bytes.Buffer
}

type lockedBuffer struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (l lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (p *processes) start(name string) {
	p.t.Helper()
	cmd := exec.Command(filepath.Join(bin, name))
	cmd.Env = p.env
	buf := &bytes.Buffer{}
	w := lockedBuffer{&p.mu, buf}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", name, err)
	}
	p.mu.Lock()
	p.cmds, p.names, p.logs = append(p.cmds, cmd), append(p.names, name), append(p.logs, buf)
	p.mu.Unlock()
}

// stopAll sends SIGTERM and waits; Kiln drains within 25 s, and a process
// still alive after 30 s is killed and reported.
func (p *processes) stopAll() {
	for i, cmd := range p.cmds {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			p.t.Errorf("%s ignored SIGTERM for 30 s", p.names[i])
		}
	}
}

func (p *processes) dumpLogs() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, b := range p.logs {
		p.t.Logf("--- %s ---\n%s", p.names[i], b.String())
	}
}

func waitHealthy(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Kiln at %s not healthy after 20 s (last error %v)", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
