// Package deploy_test checks Kiln's deploy files (app.json, the Dockerfile,
// docker-compose.yml) against what Kiln actually needs: the configuration
// each process loads, the commands the Procfile runs. A deploy file that
// drifts from the code fails here rather than on a partner's first deploy.
package deploy_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/config"
	"github.com/kiln-dev/kiln/internal/kilntest"
)

// root is the repository root, relative to this package.
const root = ".."

// processes are the Kiln processes the deploy files must configure.
var processes = []struct {
	name string
	p    config.Process
}{{"release", config.Release}, {"web", config.Web}, {"worker", config.Worker}}

type appJSON struct {
	Addons []struct {
		Plan string `json:"plan"`
	} `json:"addons"`
	Formation map[string]struct {
		Quantity int `json:"quantity"`
	} `json:"formation"`
	Buildpacks []struct {
		URL string `json:"url"`
	} `json:"buildpacks"`
	Env map[string]struct {
		Description string `json:"description"`
		Generator   string `json:"generator"`
		Value       string `json:"value"`
		Required    *bool  `json:"required"`
	} `json:"env"`
}

// TestAppJSON deploys app.json on paper: the Heroku Button's generated and
// default values, the add-ons' URLs, and what the operator types in must
// configure every process.
func TestAppJSON(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root, "app.json"))
	if err != nil {
		t.Fatal(err)
	}
	var app appJSON
	if err := json.Unmarshal(data, &app); err != nil {
		t.Fatalf("app.json is not valid JSON: %v", err)
	}
	var plans []string
	for _, a := range app.Addons {
		plans = append(plans, strings.SplitN(a.Plan, ":", 2)[0])
	}
	for _, want := range []string{"heroku-postgresql", "heroku-redis"} {
		if !slices.Contains(plans, want) {
			t.Errorf("app.json add-ons %v lack %s", plans, want)
		}
	}
	for _, p := range []string{"web", "worker"} {
		if app.Formation[p].Quantity < 1 {
			t.Errorf("app.json formation has no %s dyno", p)
		}
	}

	// What only the operator can supply: it must be asked for.
	operator := map[string]string{
		"ADDON_ID":                   "kiln",
		"HEROKU_OAUTH_CLIENT_SECRET": "from-the-partner-portal",
		"ENCRYPTION_KEY":             kilntest.Key(), // the documented manual step
		"PUBLIC_URL":                 "https://my-kiln.herokuapp.com",
	}
	env := map[string]string{
		"DATABASE_URL": "postgres://u:p@ec2-1-2-3-4.compute-1.amazonaws.com:5432/d1", // heroku-postgresql
		"REDIS_URL":    "rediss://:p@ec2-5-6-7-8.compute-1.amazonaws.com:6380",       // heroku-redis
		"PORT":         "12345",                                                      // the dyno
	}
	for name, v := range app.Env {
		if v.Description == "" {
			t.Errorf("app.json env %s has no description", name)
		}
		switch {
		case v.Generator == "secret":
			env[name] = herokuSecret(t)
		case v.Value != "":
			env[name] = v.Value
		case operator[name] != "":
			if v.Required == nil || !*v.Required {
				t.Errorf("app.json env %s must be required: only the operator can supply it", name)
			}
			env[name] = operator[name]
		}
	}
	for name := range operator {
		if _, ok := app.Env[name]; !ok {
			t.Errorf("app.json does not ask for %s", name)
		}
	}
	for _, p := range processes {
		if _, err := config.Load(func(k string) string { return env[k] }, p.p); err != nil {
			t.Errorf("app.json does not configure %s: %v", p.name, err)
		}
	}

	// Why ENCRYPTION_KEY is a manual step: Heroku's secret generator makes
	// hex, which is not base64 of 32 bytes, and Kiln refuses it.
	if app.Env["ENCRYPTION_KEY"].Generator != "" {
		t.Error("ENCRYPTION_KEY has a generator; Heroku's generators cannot make base64 of 32 bytes")
	}
	env["ENCRYPTION_KEY"] = herokuSecret(t)
	if _, err := config.Load(func(k string) string { return env[k] }, config.Web); err == nil || !strings.Contains(err.Error(), "openssl rand -base64 32") {
		t.Errorf("a generated hex ENCRYPTION_KEY should be refused with the openssl hint, got %v", err)
	}
}

// herokuSecret imitates app.json's "generator": "secret": 64 hex characters.
func herokuSecret(t *testing.T) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestCompose validates docker-compose.yml with `docker compose config` (or
// Debian's docker-compose 1.29 where the compose plugin is missing;
// scripts/services.sh installs it) and checks that the environment it gives
// each Kiln process configures it.
func TestCompose(t *testing.T) {
	out := composeConfig(t)
	var c struct {
		Services map[string]struct {
			Image       string            `json:"image"`
			Command     []string          `json:"command"`
			Environment map[string]string `json:"environment"`
			DependsOn   map[string]struct {
				Condition string `json:"condition"`
			} `json:"depends_on"`
		} `json:"services"`
	}
	if err := json.Unmarshal(out, &c); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"postgres", "redis", "release", "web", "worker", "simulator"} {
		if _, ok := c.Services[s]; !ok {
			t.Errorf("no %s service", s)
		}
	}
	for _, p := range processes {
		svc := c.Services[p.name]
		if strings.Join(svc.Command, " ") != "bin/"+p.name {
			t.Errorf("%s runs %v, want bin/%s as the Procfile does", p.name, svc.Command, p.name)
		}
		if _, err := config.Load(func(k string) string { return svc.Environment[k] }, p.p); err != nil {
			t.Errorf("compose's environment does not configure %s: %v", p.name, err)
		}
		if p.name == "release" {
			continue
		}
		if got := svc.DependsOn["release"].Condition; got != "service_completed_successfully" {
			t.Errorf("%s depends on release with %q, want service_completed_successfully", p.name, got)
		}
		if svc.Environment["HEROKU_API_URL"] != "http://simulator:5050" || svc.Environment["HEROKU_ID_URL"] != "http://simulator:5050" {
			t.Errorf("%s does not call the simulator: %v", p.name, svc.Environment)
		}
	}
	sim := c.Services["simulator"]
	if !slices.Contains(sim.Command, "sim") || !slices.Contains(sim.Command, "--listen") ||
		sim.Environment["HEROKU_OAUTH_CLIENT_SECRET"] != c.Services["worker"].Environment["HEROKU_OAUTH_CLIENT_SECRET"] {
		t.Errorf("the simulator (%v) must run kiln-heroku sim with the worker's client secret", sim.Command)
	}
}

// TestDockerfile checks the image recipe: multi-stage, static binaries of
// every command, a non-root user, and that its build command really builds
// every cmd/* statically.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	var froms int
	var user, build string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "FROM "):
			froms++
		case strings.HasPrefix(line, "USER "):
			user = strings.TrimSpace(strings.TrimPrefix(line, "USER "))
		case strings.Contains(line, "go build"):
			build = line
		}
	}
	if froms < 2 {
		t.Errorf("want a multi-stage build, found %d FROM", froms)
	}
	if user == "" || user == "root" || strings.HasPrefix(user, "0") {
		t.Errorf("the image runs as %q; want a non-root USER", user)
	}
	if !strings.Contains(text, "CGO_ENABLED=0") || !strings.Contains(build, "./cmd/...") {
		t.Errorf("want CGO_ENABLED=0 and a build of ./cmd/..., got %q", build)
	}
	if !regexp.MustCompile(`(?m)^CMD \["bin/web"\]`).MatchString(text) {
		t.Error(`the default command should be the Procfile's web: CMD ["bin/web"]`)
	}

	// Build what the Dockerfile builds, static as it builds it (-trimpath
	// and -ldflags only shrink the binaries; leaving them out shares the
	// build cache with other tests).
	out := t.TempDir()
	cmd := exec.Command("go", "build", "-o", out+"/", "./cmd/...")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the Dockerfile's build fails: %v\n%s", err, b)
	}
	dirs, err := filepath.Glob(filepath.Join(root, "cmd", "*", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range dirs {
		name := filepath.Base(filepath.Dir(m))
		f, err := elf.Open(filepath.Join(out, name))
		if err != nil {
			t.Errorf("cmd/%s: no binary: %v", name, err)
			continue
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("cmd/%s is dynamically linked; distroless/static has no libc", name)
			}
		}
		f.Close()
	}
	for _, need := range []string{"release", "web", "worker", "kiln-heroku"} {
		if _, err := os.Stat(filepath.Join(out, need)); err != nil {
			t.Errorf("the image would lack bin/%s", need)
		}
	}
}

// composeConfig returns docker-compose.yml resolved by a Compose
// implementation, as JSON: the docker compose plugin when there is one, else
// docker-compose 1.29, whose YAML output is converted with the python3-yaml
// it depends on. The resolving validates the file against Compose's schema.
func composeConfig(t *testing.T) []byte {
	t.Helper()
	run := func(name string, args ...string) []byte {
		cmd := exec.Command(name, args...)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			var stderr string
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr)
		}
		return out
	}
	if _, err := exec.LookPath("docker"); err == nil {
		if exec.Command("docker", "compose", "version").Run() == nil {
			return run("docker", "compose", "-f", "docker-compose.yml", "config", "--format", "json")
		}
	}
	if _, err := exec.LookPath("docker-compose"); err != nil {
		kilntest.SkipMissing(t, "neither the docker compose plugin nor docker-compose is installed, so docker-compose.yml was not validated (make test installs docker-compose as root; else: sudo apt-get install -y docker-compose)")
	}
	yml := run("docker-compose", "-f", "docker-compose.yml", "config")
	conv := exec.Command("/usr/bin/python3", "-c", "import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)")
	conv.Stdin = bytes.NewReader(yml)
	out, err := conv.Output()
	if err != nil {
		t.Fatalf("convert docker-compose's YAML to JSON: %v", err)
	}
	return out
}
