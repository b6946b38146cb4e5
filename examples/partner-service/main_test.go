package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
	httpdriver "github.com/kiln-dev/kiln/internal/drivers/http"
)

const secret = "reference-service-secret-0123456789ab"

// start runs the service as main does, on a free port, until the test ends.
func start(t *testing.T, env map[string]string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	env["PORT"] = port
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, func(k string) string { return env[k] }, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("run: %v", err)
		}
	})
	base := "http://127.0.0.1:" + port
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err == nil {
			c.Close()
			return base
		}
		if i > 100 {
			t.Fatal("the service did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const id = "11111111-2222-3333-4444-555555555555"

func res(plan string) addon.Resource {
	return addon.Resource{ID: id, Name: "acme", Plan: addon.Plan{Slug: plan}, Region: "us"}
}

// TestWithKilnsDriver drives the service with Kiln's own http driver: the
// reference verifier and Kiln's signer agree, and each step behaves as
// the protocol says.
func TestWithKilnsDriver(t *testing.T) {
	base := start(t, map[string]string{"KILN_SIGNING_SECRET": "old-secret-being-retired," + secret, "PARTNER_CREATE_DELAY": "1s"})
	d, err := httpdriver.New(httpdriver.Options{URL: base, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	vars, err := d.Create(ctx, res("test"))
	if err != nil {
		t.Fatalf("create (202, then polled): %v", err)
	}
	if !strings.Contains(vars["URL"], vars["API_KEY"]) || vars["API_KEY"] == "" {
		t.Errorf("config = %v", vars)
	}
	again, err := d.Create(ctx, res("test"))
	if err != nil || again["URL"] != vars["URL"] {
		t.Errorf("a repeated create answered %v, %v; want the same resource", again, err)
	}
	r := res("test")
	r.Vars = vars
	if _, err := d.ChangePlan(ctx, r, addon.Plan{Slug: "pro"}); err != nil {
		t.Errorf("upgrade: %v", err)
	}
	_, err = d.ChangePlan(ctx, r, addon.Plan{Slug: "enterprise"})
	if addon.ErrorCode(err) != addon.EINVALID || !strings.Contains(addon.ErrorMessage(err), `does not sell plan "enterprise"`) {
		t.Errorf("unsold plan: %v, want EINVALID with the service's message", err)
	}
	rotated, err := d.RotateCredentials(ctx, r)
	if err != nil || rotated["API_KEY"] == vars["API_KEY"] {
		t.Errorf("rotate: %v, %v", rotated, err)
	}
	if err := d.Destroy(ctx, r); err != nil {
		t.Errorf("delete: %v", err)
	}
	if err := d.Destroy(ctx, r); err != nil {
		t.Errorf("delete again (404 is gone): %v", err)
	}
	if _, err := d.RotateCredentials(ctx, r); !errors.Is(err, addon.ErrCannotRotate) {
		t.Errorf("rotate after delete: %v", err)
	}
}

func TestRefusesUnsigned(t *testing.T) {
	base := start(t, map[string]string{"KILN_SIGNING_SECRET": secret})
	body := []byte(`{"id":"` + id + `","plan":"test"}`)
	now := time.Now()
	tests := []struct {
		name   string
		header string
		want   int
	}{
		{"signed", httpdriver.Sign(secret, now, "POST", "/resources", body), http.StatusCreated},
		{"unsigned", "", http.StatusUnauthorized},
		{"stale", httpdriver.Sign(secret, now.Add(-6*time.Minute), "POST", "/resources", body), http.StatusUnauthorized},
		{"future", httpdriver.Sign(secret, now.Add(6*time.Minute), "POST", "/resources", body), http.StatusUnauthorized},
		{"wrong secret", httpdriver.Sign("not-the-secret", now, "POST", "/resources", body), http.StatusUnauthorized},
		{"other path", httpdriver.Sign(secret, now, "POST", "/resources/x", body), http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", base+"/resources", bytes.NewReader(body))
			if tt.header != "" {
				req.Header.Set("Kiln-Signature", tt.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("answered %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}
