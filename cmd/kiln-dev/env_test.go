package main

import (
	"context"
	"database/sql"
	"encoding/base64"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/config"
	"github.com/kiln-dev/kiln/internal/devenv"
	"github.com/kiln-dev/kiln/internal/kilntest"
)

func noEnv(string) string { return "" }

func TestLoadEnvGeneratesThenReuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".dev", "env")
	first, err := loadEnv(path, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Created {
		t.Fatal("first run did not report creating the file")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("env file mode %v, want 0600", fi.Mode().Perm())
	}
	key, err := base64.StdEncoding.DecodeString(first.Get("ENCRYPTION_KEY"))
	if err != nil || len(key) != 32 {
		t.Errorf("ENCRYPTION_KEY is not base64 of 32 bytes: %v (%d bytes)", err, len(key))
	}
	if first.Get("PORT") != "5000" {
		t.Errorf("PORT = %q, want 5000", first.Get("PORT"))
	}
	for _, p := range []config.Process{config.Web, config.Worker, config.Release} {
		if _, err := config.Load(first.Get, p); err != nil {
			t.Errorf("the generated environment does not configure Kiln: %v", err)
		}
	}

	second, err := loadEnv(path, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if second.Created || len(second.Added) != 0 {
		t.Fatalf("second run: created %v, added %v; want the file reused as is", second.Created, second.Added)
	}
	for _, k := range []string{"ADDON_PASSWORD", "ADDON_SSO_SALT", "HEROKU_OAUTH_CLIENT_SECRET", "ENCRYPTION_KEY", "ADMIN_PASSWORD"} {
		if first.Get(k) != second.Get(k) || first.Get(k) == "" {
			t.Errorf("%s changed between runs (%q → %q)", k, first.Get(k), second.Get(k))
		}
	}

	// A developer's edit survives; a deleted variable comes back fresh.
	vars, err := devenv.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	var edited []devenv.Var
	for _, v := range vars {
		switch v.Key {
		case "ADMIN_PASSWORD":
			continue
		case "ADDON_ID":
			v.Value = "my-addon"
		}
		edited = append(edited, v)
	}
	if err := devenv.Write(path, "edited", edited); err != nil {
		t.Fatal(err)
	}
	third, err := loadEnv(path, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if third.Get("ADDON_ID") != "my-addon" || third.Get("ENCRYPTION_KEY") != first.Get("ENCRYPTION_KEY") {
		t.Errorf("edits not kept: ADDON_ID %q", third.Get("ADDON_ID"))
	}
	if strings.Join(third.Added, ",") != "ADMIN_PASSWORD" || third.Get("ADMIN_PASSWORD") == "" || third.Get("ADMIN_PASSWORD") == first.Get("ADMIN_PASSWORD") {
		t.Errorf("added %v, ADMIN_PASSWORD %q; want a fresh ADMIN_PASSWORD added", third.Added, third.Get("ADMIN_PASSWORD"))
	}
}

// TestLoadEnvReplacesShortAdminPassword: a .dev/env from before Kiln refused
// short admin passwords gets a long one, and keeps everything else.
func TestLoadEnvReplacesShortAdminPassword(t *testing.T) {
	path := filepath.Join(t.TempDir(), "env")
	first, err := loadEnv(path, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(first.Get("ADMIN_PASSWORD")); n < config.MinAdminPasswordLen {
		t.Fatalf("generated ADMIN_PASSWORD has %d characters", n)
	}
	vars, err := devenv.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range vars {
		if vars[i].Key == "ADMIN_PASSWORD" {
			vars[i].Value = "sixteen-chars-xx"
		}
	}
	if err := devenv.Write(path, "old", vars); err != nil {
		t.Fatal(err)
	}
	second, err := loadEnv(path, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(second.Replaced, ",") != "ADMIN_PASSWORD" || len(second.Get("ADMIN_PASSWORD")) < config.MinAdminPasswordLen {
		t.Errorf("replaced %v, ADMIN_PASSWORD %q", second.Replaced, second.Get("ADMIN_PASSWORD"))
	}
	if second.Get("ENCRYPTION_KEY") != first.Get("ENCRYPTION_KEY") {
		t.Error("other secrets changed")
	}
	third, err := loadEnv(path, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(third.Replaced) != 0 || third.Get("ADMIN_PASSWORD") != second.Get("ADMIN_PASSWORD") {
		t.Errorf("the replacement was not kept: replaced %v", third.Replaced)
	}
}

func TestLoadEnvShellOverrides(t *testing.T) {
	path := filepath.Join(t.TempDir(), "env")
	shell := map[string]string{"PORT": "6123", "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/other", "UNRELATED": "x"}
	e, err := loadEnv(path, func(k string) string { return shell[k] })
	if err != nil {
		t.Fatal(err)
	}
	if e.Get("PORT") != "6123" || e.Get("DATABASE_URL") != shell["DATABASE_URL"] {
		t.Errorf("overrides not applied: PORT %q, DATABASE_URL %q", e.Get("PORT"), e.Get("DATABASE_URL"))
	}
	if strings.Join(e.Overridden, ",") != "DATABASE_URL,PORT" {
		t.Errorf("Overridden = %v", e.Overridden)
	}
	saved, err := devenv.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := devenv.Map(saved); m["PORT"] != "5000" {
		t.Errorf("an override leaked into the file: PORT=%s", m["PORT"])
	}
	environ := strings.Join(e.Environ(), "\n")
	if !strings.Contains(environ, "\nPORT=6123") {
		t.Errorf("child environment lacks the override")
	}
}

func TestLoadEnvBrokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(path, []byte("this is not an env file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadEnv(path, noEnv); err == nil || !strings.Contains(err.Error(), "delete it to regenerate") {
		t.Fatalf("loadEnv = %v, want a clear refusal", err)
	}
}

func TestEndpointOf(t *testing.T) {
	tests := []struct {
		url     string
		def     int
		want    endpoint
		local   bool
		wantErr bool
	}{
		{"postgres://postgres@127.0.0.1:5432/kiln_dev?sslmode=disable", 5432, endpoint{"127.0.0.1", 5432}, true, false},
		{"postgres://u:p@localhost/kiln", 5432, endpoint{"localhost", 5432}, true, false},
		{"redis://127.0.0.1:6380/0", 6379, endpoint{"127.0.0.1", 6380}, true, false},
		{"redis://[::1]/0", 6379, endpoint{"::1", 6379}, true, false},
		{"rediss://h:p@ec2-1-2-3-4.compute.amazonaws.com:12345", 6379, endpoint{"ec2-1-2-3-4.compute.amazonaws.com", 12345}, false, false},
		{"not a url", 5432, endpoint{}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			got, err := endpointOf(tt.url, tt.def)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v", err)
			}
			if tt.wantErr {
				return
			}
			if got != tt.want || got.Local() != tt.local {
				t.Errorf("got %v (local %v), want %v (local %v)", got, got.Local(), tt.want, tt.local)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().(*net.TCPAddr).Port
	free := freePort(t)
	tests := []struct {
		name string
		e    endpoint
		want action
	}{
		{"something listens: reuse it", endpoint{"127.0.0.1", busy}, reuse},
		{"nothing on loopback: start our own", endpoint{"127.0.0.1", free}, start},
		{"nothing on localhost: start our own", endpoint{"localhost", free}, start},
		// 192.0.2.0/24 is TEST-NET-1: never routed, never ours to start.
		{"nothing remote: refuse", endpoint{"192.0.2.1", 5432}, unreachable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if got := decide(ctx, tt.e); got != tt.want {
				t.Errorf("decide(%v) = %v, want %v", tt.e, got, tt.want)
			}
		})
	}
}

func TestFindPostgres(t *testing.T) {
	fake := func(version string) string {
		dir := t.TempDir()
		script := "#!/bin/sh\necho 'postgres (PostgreSQL) " + version + " (Fake)'\n"
		for _, name := range []string{"initdb", "postgres"} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	v15, v16 := fake("15.4"), fake("16.2")
	onlyInitdb := t.TempDir()
	_ = os.WriteFile(filepath.Join(onlyInitdb, "initdb"), []byte("#!/bin/sh\n"), 0o755)
	tests := []struct {
		name    string
		dirs    []string
		want    string
		have    string
		wantErr string
	}{
		{"first complete directory", []string{onlyInitdb, v16, v15}, v16, "", ""},
		{"the data directory's version", []string{v16, v15}, v15, "15", ""},
		{"none installed: install hint", []string{onlyInitdb, t.TempDir()}, "", "", "sudo apt-get install -y postgresql"},
		{"wrong version installed", []string{v16}, "", "14", "PostgreSQL 14"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := findPostgres(tt.dirs, tt.have)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("findPostgres = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestEnsureDatabase(t *testing.T) {
	u, err := url.Parse(kilntest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	name := kilntest.Name("kiln_dev_test")
	u.Path = "/" + name
	t.Cleanup(func() {
		db, err := sql.Open("pgx", kilntest.AdminURL())
		if err != nil {
			t.Error(err)
			return
		}
		defer db.Close()
		if _, err := db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Error(err)
		}
	})
	ctx := context.Background()
	for i, want := range []bool{true, false} {
		created, err := ensureDatabase(ctx, u.String())
		if err != nil {
			t.Fatal(err)
		}
		if created != want {
			t.Fatalf("run %d: created = %v, want %v", i+1, created, want)
		}
	}
	bad := *u
	bad.User = url.UserPassword("no_such_role_kiln", "x")
	if _, err := ensureDatabase(ctx, bad.String()); err == nil || !strings.Contains(err.Error(), "fix DATABASE_URL") {
		t.Fatalf("ensureDatabase with a bad role = %v, want a hint", err)
	}
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
