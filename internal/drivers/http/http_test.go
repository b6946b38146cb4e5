package http_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
	httpdriver "github.com/kiln-dev/kiln/internal/drivers/http"
)

const secret = "test-signing-secret-0123456789abcdef"

// seen is one request as the fake service received it.
type seen struct {
	Method, Path, Key string
	Body              []byte
	SigErr            error
}

// service is a fake partner service whose answers a test scripts; it
// checks every signature with httpdriver.Verify and records the requests.
type service struct {
	t      testing.TB
	mu     sync.Mutex
	reqs   []seen
	answer func(n int, r seen) (int, http.Header, any)
}

func (s *service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	got := seen{Method: r.Method, Path: r.URL.EscapedPath(), Key: r.Header.Get("Idempotency-Key"), Body: body,
		SigErr: httpdriver.Verify(secret, r.Header.Get("Kiln-Signature"), time.Now(), r.Method, r.URL.EscapedPath(), body)}
	s.mu.Lock()
	n := len(s.reqs)
	s.reqs = append(s.reqs, got)
	s.mu.Unlock()
	status, h, v := s.answer(n, got)
	for k, vs := range h {
		w.Header()[k] = vs
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if v != nil {
		_ = json.NewEncoder(w).Encode(v)
	}
}

func (s *service) requests() []seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seen(nil), s.reqs...)
}

func newDriver(t testing.TB, answer func(n int, r seen) (int, http.Header, any), opts ...func(*httpdriver.Options)) (*httpdriver.Driver, *service) {
	t.Helper()
	svc := &service{t: t, answer: answer}
	srv := httptest.NewServer(svc)
	t.Cleanup(srv.Close)
	o := httpdriver.Options{URL: srv.URL + "/kiln", Secret: secret, PollBudget: 10 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	d, err := httpdriver.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return d, svc
}

const id = "01234567-89ab-cdef-0123-456789abcdef"

func resource() addon.Resource {
	return addon.Resource{ID: id, Name: "acme-primary", Plan: addon.Plan{Slug: "test"}, Region: "amazon-web-services::us-east-1",
		Options: map[string]string{"size": "s"}, Vars: addon.Vars{"URL": "https://u:old@svc.example.com"}}
}

func config(url string) map[string]any {
	return map[string]any{"config": map[string]string{"URL": url}}
}

func TestCreate(t *testing.T) {
	d, svc := newDriver(t, func(n int, r seen) (int, http.Header, any) {
		return http.StatusCreated, nil, config("https://u:k@svc.example.com")
	})
	r := resource()
	r.Vars = nil
	vars, err := d.Create(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	if vars["URL"] != "https://u:k@svc.example.com" {
		t.Errorf("vars = %v", vars)
	}
	reqs := svc.requests()
	if len(reqs) != 1 || reqs[0].Method != "POST" || reqs[0].Path != "/kiln/resources" {
		t.Fatalf("requests = %+v", reqs)
	}
	if reqs[0].SigErr != nil {
		t.Errorf("signature: %v", reqs[0].SigErr)
	}
	var b map[string]any
	if err := json.Unmarshal(reqs[0].Body, &b); err != nil {
		t.Fatal(err)
	}
	app, _ := b["app"].(map[string]any)
	if b["id"] != id || b["plan"] != "test" || b["region"] != r.Region || app["name"] != "acme-primary" {
		t.Errorf("create body = %s", reqs[0].Body)
	}
	if opts, _ := b["options"].(map[string]any); opts["size"] != "s" {
		t.Errorf("options not sent: %s", reqs[0].Body)
	}
}

// TestIdempotencyKeys: a retry of a step carries the same key; a different
// step (or the next rotation) carries another.
func TestIdempotencyKeys(t *testing.T) {
	d, svc := newDriver(t, func(n int, r seen) (int, http.Header, any) {
		return http.StatusOK, nil, config("https://u:new@svc.example.com")
	})
	ctx := context.Background()
	r := resource()
	d.Create(ctx, r)
	d.Create(ctx, r)
	d.ChangePlan(ctx, r, addon.Plan{Slug: "basic"})
	d.ChangePlan(ctx, r, addon.Plan{Slug: "basic"})
	d.RotateCredentials(ctx, r)
	d.RotateCredentials(ctx, r)
	rotated := r
	rotated.Vars = addon.Vars{"URL": "https://u:new@svc.example.com"}
	d.RotateCredentials(ctx, rotated)
	d.Destroy(ctx, r)
	d.Destroy(ctx, r)
	reqs := svc.requests()
	if len(reqs) != 9 {
		t.Fatalf("%d requests", len(reqs))
	}
	for _, pair := range [][2]int{{0, 1}, {2, 3}, {4, 5}, {7, 8}} {
		if reqs[pair[0]].Key == "" || reqs[pair[0]].Key != reqs[pair[1]].Key {
			t.Errorf("retries of %s %s carried keys %q and %q", reqs[pair[0]].Method, reqs[pair[0]].Path, reqs[pair[0]].Key, reqs[pair[1]].Key)
		}
	}
	keys := map[string]bool{}
	for _, i := range []int{0, 2, 4, 6, 7} {
		if keys[reqs[i].Key] {
			t.Errorf("step %d reuses key %q", i, reqs[i].Key)
		}
		keys[reqs[i].Key] = true
	}
	for i, r := range reqs {
		if r.SigErr != nil {
			t.Errorf("request %d: %v", i, r.SigErr)
		}
	}
	if reqs[2].Method != "PUT" || reqs[2].Path != "/kiln/resources/"+id || string(reqs[2].Body) != `{"plan":"basic"}` {
		t.Errorf("plan change sent %s %s %s", reqs[2].Method, reqs[2].Path, reqs[2].Body)
	}
	if reqs[4].Path != "/kiln/resources/"+id+"/actions/rotate-credentials" || reqs[7].Method != "DELETE" {
		t.Errorf("rotate/delete sent %+v %+v", reqs[4], reqs[7])
	}
}

func TestCreatePolls202(t *testing.T) {
	d, svc := newDriver(t, func(n int, r seen) (int, http.Header, any) {
		switch {
		case r.Method == "POST":
			return http.StatusAccepted, nil, map[string]string{"message": "creating"}
		case n < 3:
			return http.StatusAccepted, nil, map[string]string{"message": "still creating"}
		}
		return http.StatusOK, nil, config("https://u:k@svc.example.com")
	})
	vars, err := d.Create(context.Background(), resource())
	if err != nil || vars["URL"] != "https://u:k@svc.example.com" {
		t.Fatalf("Create = %v, %v", vars, err)
	}
	reqs := svc.requests()
	if len(reqs) != 4 {
		t.Fatalf("%d requests, want the POST and three polls", len(reqs))
	}
	for _, r := range reqs[1:] {
		if r.Method != "GET" || r.Path != "/kiln/resources/"+id || r.Key != reqs[0].Key || r.SigErr != nil {
			t.Errorf("poll %+v", r)
		}
	}
}

// TestCreateStillPending: past the poll budget the step is handed back to
// the worker's retries as a transient error.
func TestCreateStillPending(t *testing.T) {
	d, _ := newDriver(t, func(n int, r seen) (int, http.Header, any) {
		return http.StatusAccepted, nil, map[string]string{"message": "warming up"}
	}, func(o *httpdriver.Options) { o.PollBudget = 1200 * time.Millisecond })
	_, err := d.Create(context.Background(), resource())
	if !addon.Transient(err) || addon.ErrorCode(err) != addon.EUNAVAILABLE || !strings.Contains(addon.ErrorMessage(err), "warming up") {
		t.Fatalf("Create = %v, want a transient EUNAVAILABLE carrying the service's message", err)
	}
	if addon.RetryAfter(err) <= 0 {
		t.Errorf("no retry hint")
	}

	// The service's own hint wins when it asks for longer than the poll.
	d, _ = newDriver(t, func(n int, r seen) (int, http.Header, any) {
		return http.StatusAccepted, http.Header{"Retry-After": {"600"}}, map[string]string{"message": "queued"}
	}, func(o *httpdriver.Options) { o.PollBudget = 200 * time.Millisecond })
	_, err = d.Create(context.Background(), resource())
	if addon.RetryAfter(err) != 10*time.Minute {
		t.Errorf("retry after = %v, want the service's 10m", addon.RetryAfter(err))
	}
}

func TestErrorMapping(t *testing.T) {
	hdr := func(k, v string) http.Header { return http.Header{k: {v}} }
	tests := []struct {
		name       string
		call       string
		status     int
		header     http.Header
		body       any
		code       string // "" means success
		message    string
		retryAfter time.Duration
	}{
		{"503 is retried with its hint", "create", 503, hdr("Retry-After", "7"), nil, addon.EUNAVAILABLE, "", 7 * time.Second},
		{"500 is retried", "plan", 500, nil, nil, addon.EUNAVAILABLE, "", 0},
		{"429 is a rate limit", "create", 429, hdr("Retry-After", "3"), nil, addon.ERATELIMIT, "", 3 * time.Second},
		{"429 without a hint waits anyway", "delete", 429, nil, nil, addon.ERATELIMIT, "", 5 * time.Second},
		{"409 (key in use) is retried", "create", 409, nil, nil, addon.EUNAVAILABLE, "", 0},
		{"422 on plan change carries the message", "plan", 422, nil, map[string]string{"message": "Too big for\nplan test."}, addon.EINVALID, "Too big for plan test.", 0},
		{"400 on create stops with the message", "create", 400, nil, map[string]string{"message": "Region not served."}, addon.EINVALID, "Region not served.", 0},
		{"403 without a message says the status", "create", 403, nil, nil, addon.EINVALID, "refused the create (403 Forbidden)", 0},
		{"404 on plan change is a refusal", "plan", 404, nil, nil, addon.EINVALID, "does not know", 0},
		{"404 on delete is gone", "delete", 404, nil, nil, "", "", 0},
		{"410 on delete is gone", "delete", 410, nil, nil, "", "", 0},
		{"204 on delete", "delete", 204, nil, nil, "", "", 0},
		{"404 on rotate cannot rotate", "rotate", 404, nil, nil, addon.EUNSUPPORTED, "does not rotate", 0},
		{"501 on rotate cannot rotate", "rotate", 501, nil, nil, addon.EUNSUPPORTED, "does not rotate", 0},
		{"200 without config on create is a service bug, retried", "create", 200, nil, map[string]string{}, addon.EINTERNAL, "no config", 0},
		{"lower-case var name is a service bug", "create", 200, nil, map[string]any{"config": map[string]string{"url": "x"}}, addon.EINTERNAL, "config var", 0},
		{"200 without config on plan change keeps the vars", "plan", 200, nil, map[string]string{}, "", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _ := newDriver(t, func(n int, r seen) (int, http.Header, any) { return tt.status, tt.header, tt.body })
			ctx := context.Background()
			var err error
			switch tt.call {
			case "create":
				_, err = d.Create(ctx, resource())
			case "plan":
				var vars addon.Vars
				vars, err = d.ChangePlan(ctx, resource(), addon.Plan{Slug: "basic"})
				if err == nil && vars["URL"] != resource().Vars["URL"] {
					t.Errorf("vars after a config-less plan change = %v", vars)
				}
			case "delete":
				err = d.Destroy(ctx, resource())
			case "rotate":
				_, err = d.RotateCredentials(ctx, resource())
				if tt.code != "" && !errors.Is(err, addon.ErrCannotRotate) {
					t.Errorf("rotate error %v is not ErrCannotRotate", err)
				}
			}
			if got := addon.ErrorCode(err); got != tt.code {
				t.Fatalf("code = %q (%v), want %q", got, err, tt.code)
			}
			if tt.message != "" && !strings.Contains(addon.ErrorMessage(err), tt.message) {
				t.Errorf("message = %q, want it to contain %q", addon.ErrorMessage(err), tt.message)
			}
			if got := addon.RetryAfter(err); got != tt.retryAfter {
				t.Errorf("retry after = %v, want %v", got, tt.retryAfter)
			}
			if tt.code == addon.EINVALID && addon.Transient(err) {
				t.Errorf("a refusal is transient")
			}
		})
	}
}

// TestUnsupported: what the protocol has no call for is refused as
// EUNSUPPORTED without asking the service, and Abilities says so first.
func TestUnsupported(t *testing.T) {
	d, svc := newDriver(t, func(n int, r seen) (int, http.Header, any) {
		return http.StatusInternalServerError, nil, nil
	})
	if got, want := d.Abilities(), (addon.Abilities{Rotate: true}); got != want {
		t.Errorf("Abilities = %+v, want %+v", got, want)
	}
	ctx := context.Background()
	calls := map[string]func() error{
		"roll":   func() error { _, err := d.Roll(ctx, resource()); return err },
		"revoke": func() error { return d.Revoke(ctx, resource(), addon.Vars{"URL": "https://old"}) },
		"panel":  func() error { _, err := d.Panel(ctx, resource()); return err },
	}
	for name, call := range calls {
		if err := call(); addon.ErrorCode(err) != addon.EUNSUPPORTED {
			t.Errorf("%s = %v, want EUNSUPPORTED", name, err)
		}
	}
	if reqs := svc.requests(); len(reqs) != 0 {
		t.Errorf("the service was called: %+v", reqs)
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	d, _ := newDriver(t, func(n int, r seen) (int, http.Header, any) {
		<-release
		return http.StatusOK, nil, config("https://x")
	}, func(o *httpdriver.Options) { o.Timeout = 200 * time.Millisecond })
	defer close(release)
	_, err := d.Create(context.Background(), resource())
	if addon.ErrorCode(err) != addon.EUNAVAILABLE || !strings.Contains(addon.ErrorMessage(err), "did not answer within 200ms") {
		t.Fatalf("Create = %v, want EUNAVAILABLE naming the timeout", err)
	}
}

func TestUnreachable(t *testing.T) {
	d, err := httpdriver.New(httpdriver.Options{URL: "http://127.0.0.1:1", Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Create(context.Background(), resource()); addon.ErrorCode(err) != addon.EUNAVAILABLE {
		t.Fatalf("Create = %v, want EUNAVAILABLE", err)
	}
}

func TestNewRefuses(t *testing.T) {
	for _, o := range []httpdriver.Options{
		{URL: "", Secret: secret},
		{URL: "ftp://svc.example.com", Secret: secret},
		{URL: "https://user:pw@svc.example.com", Secret: secret},
		{URL: "https://svc.example.com"},
	} {
		if _, err := httpdriver.New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}
