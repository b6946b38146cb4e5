package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/asheroku"
	"github.com/kiln-dev/kiln/internal/herokusim"
)

// cmd runs kiln-heroku in-process with only the given environment and an
// empty env file (args[0] is the command), and returns its exit code and
// output.
func cmd(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	empty := emptyFile(t)
	args = append(args[:1:1], append([]string{"--env-file", empty}, args[1:]...)...)
	code := run(context.Background(), args, func(k string) string { return env[k] }, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// emptyFile is an empty env file: the command reads nothing from disk.
func emptyFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runArgs runs kiln-heroku with exactly args.
func runArgs(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, func(k string) string { return env[k] }, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestManifestGenerateThenValidate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "addon-manifest.json")
	env := map[string]string{"ADDON_ID": "acme-db", "RESOURCE_DRIVER": "postgres"}
	code, _, stderr := runArgs(t, env, "manifest", "generate", "--url", "https://kiln.example.com", "-o", path)
	if code != 0 {
		t.Fatalf("generate exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "heroku config:set") || strings.Contains(stderr, `"password"`) {
		t.Errorf("generate should say how to set the secrets without printing them:\n%s", stderr)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m asheroku.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if m.ID != "acme-db" || m.API.ConfigVarsPrefix != "ACME_DB" || strings.Join(m.API.ConfigVars, ",") != "ACME_DB_URL" ||
		m.API.Production.BaseURL != "https://kiln.example.com/heroku/resources" || m.API.Version != "3" {
		t.Errorf("manifest = %+v", m)
	}
	code, stdout, stderr := runArgs(t, env, "manifest", "validate", path)
	if code != 0 || !strings.Contains(stdout, "valid") {
		t.Fatalf("validate exit %d: %s%s", code, stdout, stderr)
	}
	// -o never overwrites a manifest (it holds the live secrets).
	if code, _, stderr := runArgs(t, env, "manifest", "generate", "--url", "https://kiln.example.com", "-o", path); code == 0 || !strings.Contains(stderr, "exists") {
		t.Errorf("generate over an existing file: exit %d, %s", code, stderr)
	}
}

func TestManifestGenerateReuseSecrets(t *testing.T) {
	env := map[string]string{"ADDON_ID": "kiln", "ADDON_PASSWORD": "current-password-0123456789abcdef,old-one", "ADDON_SSO_SALT": "current-salt-0123456789abcdefghijk"}
	code, stdout, stderr := runArgs(t, env, "manifest", "generate", "--url", "https://kiln.example.com", "--reuse-secrets")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var m asheroku.Manifest
	if err := json.Unmarshal([]byte(stdout), &m); err != nil {
		t.Fatal(err)
	}
	if m.API.Password != "current-password-0123456789abcdef" || m.API.SSOSalt != env["ADDON_SSO_SALT"] || m.Name != "Kiln" {
		t.Errorf("manifest api = %+v", m.API)
	}
	if strings.Contains(stderr, "config:set") {
		t.Errorf("nothing to set when reusing secrets, yet: %s", stderr)
	}
}

func TestManifestCommandsRefuse(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"id":"Kiln","name":"K","api":{"config_vars":["KILN_url"],"password":"short","sso_salt":"s","regions":["us"],"production":{"base_url":"http://x.test/heroku/resources","sso_url":"https://x.test/sso/login"},"version":"3"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		code int
		want []string
	}{
		{"validate lists every problem", nil, []string{"manifest", "validate", bad}, 1,
			[]string{"id: \"Kiln\" is not a slug", "api.password: is 5 characters", "api.sso_salt", "\"KILN_url\" does not match", "api.production.base_url", "must use https"}},
		{"validate a missing file", nil, []string{"manifest", "validate", filepath.Join(dir, "nope.json")}, 1, []string{"no such file"}},
		{"generate without https", map[string]string{"ADDON_ID": "kiln"}, []string{"manifest", "generate", "--url", "http://kiln.example.com"}, 1, []string{"must use https"}},
		{"generate without --url", map[string]string{"ADDON_ID": "kiln"}, []string{"manifest", "generate"}, 2, []string{"--url is required"}},
		{"generate without an id", nil, []string{"manifest", "generate", "--url", "https://kiln.example.com"}, 1, []string{"no add-on id"}},
		{"unknown driver", map[string]string{"ADDON_ID": "kiln", "RESOURCE_DRIVER": "mongo"}, []string{"manifest", "generate", "--url", "https://k.test"}, 1, []string{"unknown resource driver"}},
		{"unknown manifest command", nil, []string{"manifest", "push"}, 2, []string{"want generate or validate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := tt.env
			if env == nil {
				env = map[string]string{}
			}
			code, stdout, stderr := runArgs(t, env, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\n%s%s", code, tt.code, stdout, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

// broken is a "Kiln" that answers 200 {} to everything, checking nothing.
func broken(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestCheckFailsAgainstABrokenKiln(t *testing.T) {
	kiln := broken(t)
	_, sim := herokusim.NewServer(t, herokusim.Options{})
	tests := []struct {
		name string
		sim  []string
	}{
		{"running simulator", []string{"--sim-url", sim.URL}},
		{"in-process simulator", []string{"--sim-listen", "127.0.0.1:0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"check", "--kiln", kiln.URL, "--id", "kiln", "--password", "pw", "--sso-salt", "salt"}, tt.sim...)
			code, stdout, stderr := cmd(t, nil, args...)
			if code != 1 {
				t.Fatalf("exit %d, want 1\n%s\n%s", code, stdout, stderr)
			}
			for _, w := range []string{"RESULT", "FAIL    provision: 401 without credentials", "want 401", "failed"} {
				if !strings.Contains(stdout, w) {
					t.Errorf("table lacks %q:\n%s", w, stdout)
				}
			}
		})
	}
}

func TestSettingsErrors(t *testing.T) {
	kiln := broken(t)
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no credentials", nil, []string{"provision", "--sim-url", "http://127.0.0.1:1"}, "no credentials for Kiln"},
		{"no simulator", map[string]string{"ADDON_ID": "kiln", "ADDON_PASSWORD": "pw"}, []string{"provision", "--kiln", kiln.URL}, "no Heroku simulator"},
		{"simulator not there", map[string]string{"ADDON_ID": "kiln", "ADDON_PASSWORD": "pw"}, []string{"status", "--sim-url", kiln.URL}, "no Heroku simulator answers"},
		{"no salt for sso", map[string]string{"ADDON_ID": "kiln", "ADDON_PASSWORD": "pw"}, []string{"sso", "abc"}, "no SSO salt"},
		{"bad kiln URL", map[string]string{"ADDON_ID": "kiln", "ADDON_PASSWORD": "pw"}, []string{"deprovision", "abc", "--kiln", "localhost:5000"}, "not an http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := cmd(t, tt.env, tt.args...)
			if code != 1 || !strings.Contains(stderr, tt.want) {
				t.Fatalf("exit %d, stderr %q; want 1 and %q", code, stderr, tt.want)
			}
		})
	}
}

func TestEnvFileAndPrecedence(t *testing.T) {
	var got struct{ user, pass, path string }
	kiln := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.user, got.pass, _ = r.BasicAuth()
		got.path = r.URL.Path
		w.WriteHeader(http.StatusNoContent)
	}))
	defer kiln.Close()
	u, _ := url.Parse(kiln.URL)
	envFile := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(envFile, []byte("PORT="+u.Port()+"\nADDON_ID=from-file\nADDON_PASSWORD=file-pw,older-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		env          map[string]string
		extra        []string
		user, passwd string
	}{
		{"env file", nil, nil, "from-file", "file-pw"},
		{"environment over file", map[string]string{"ADDON_ID": "from-env"}, nil, "from-env", "file-pw"},
		{"flags over both", map[string]string{"ADDON_ID": "from-env"}, []string{"--id", "from-flag", "--password", "flag-pw"}, "from-flag", "flag-pw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := tt.env
			if env == nil {
				env = map[string]string{}
			}
			args := append([]string{"deprovision", "some-id", "--env-file", envFile}, tt.extra...)
			code, stdout, stderr := runArgs(t, env, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s%s", code, stdout, stderr)
			}
			if got.user != tt.user || got.pass != tt.passwd || got.path != "/heroku/resources/some-id" {
				t.Errorf("Kiln saw %+v, want %s:%s", got, tt.user, tt.passwd)
			}
		})
	}
	if code, _, stderr := runArgs(t, map[string]string{}, "status", "--env-file", filepath.Join(t.TempDir(), "missing")); code != 1 || !strings.Contains(stderr, "--env-file") {
		t.Errorf("an explicit missing env file: exit %d, %s", code, stderr)
	}
}

func TestSSOPage(t *testing.T) {
	out := filepath.Join(t.TempDir(), "sso.html")
	env := map[string]string{"ADDON_ID": "kiln", "ADDON_PASSWORD": "pw", "ADDON_SSO_SALT": "salty", "PORT": "5123"}
	code, stdout, stderr := cmd(t, env, "sso", "01234567-89ab-cdef-0123-456789abcdef", "--out", out, "--print")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.HasPrefix(stdout, "file://"+out) {
		t.Errorf("stdout = %q, want the page's file:// URL first", stdout)
	}
	page, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`action="http://localhost:5123/sso/login"`, `name="resource_id" value="01234567-89ab-cdef-0123-456789abcdef"`, `name="user_scoped_resource_token"`, `name="nav-data"`} {
		if !strings.Contains(string(page), w) {
			t.Errorf("page lacks %s", w)
		}
	}
	var ts, tok string
	for _, line := range strings.Split(stdout, "\n") {
		if v, ok := strings.CutPrefix(line, "timestamp="); ok {
			ts = v
		}
		if v, ok := strings.CutPrefix(line, "resource_token="); ok {
			tok = v
		}
	}
	n, _ := strconv.ParseInt(ts, 10, 64)
	if tok == "" || tok != asheroku.ResourceToken("01234567-89ab-cdef-0123-456789abcdef", "salty", n) {
		t.Errorf("printed token %q does not verify for timestamp %q", tok, ts)
	}
}

func TestSimCommand(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var stdout, stderr bytes.Buffer
	go func() {
		done <- run(ctx, []string{"sim", "--listen", addr, "--quiet", "--env-file", emptyFile(t)}, func(string) string { return "" }, &stdout, &stderr)
	}()
	t.Cleanup(cancel)
	sim := asheroku.NewSim("http://" + addr)
	deadline := time.Now().Add(10 * time.Second)
	for sim.Ping(ctx) != nil {
		select {
		case code := <-done:
			t.Fatalf("sim exited %d: %s", code, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the simulator did not come up")
		}
	}
	if _, err := sim.Register(ctx, ""); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("sim exited %d after interrupt: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sim did not stop on interrupt")
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Commands:"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"plan-change", "only-one"}, 2, "want ADDON_ID PLAN"},
		{[]string{"deprovision"}, 2, "want ADDON_ID"},
		{[]string{"sso", "one", "two"}, 2, "want ADDON_ID"},
		{[]string{"manifest", "validate"}, 2, "want FILE"},
		{[]string{"provision", "--no-such-flag"}, 2, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, stderr := runArgs(t, map[string]string{}, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr, tt.code, tt.want)
			}
		})
	}
}
