package herokusim_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/herokusim"
)

func (e *env) control(tb testing.TB, method, path, body string) answer {
	tb.Helper()
	var req *http.Request
	var err error
	if body == "" {
		req, err = http.NewRequest(method, e.srv.URL+"/_sim"+path, nil)
	} else {
		req, err = http.NewRequest(method, e.srv.URL+"/_sim"+path, strings.NewReader(body))
	}
	if err != nil {
		tb.Fatal(err)
	}
	return do(tb, req)
}

func TestControlAddons(t *testing.T) {
	tests := []struct {
		name string
		body string
		id   string // "" means generated
	}{
		{name: "given id", body: `{"id":"` + idA + `"}`, id: idA},
		{name: "generated id", body: ``},
		{name: "empty object", body: `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, herokusim.Options{})
			a := e.control(t, "POST", "/addons", tt.body)
			if a.status != 201 {
				t.Fatalf("status %d %v", a.status, a.body)
			}
			id := a.str("id")
			if tt.id != "" && id != tt.id || id == "" {
				t.Fatalf("id %q", id)
			}
			grant, _ := a.body["grant"].(map[string]any)
			code, _ := grant["code"].(string)
			exp, err := time.Parse("2006-01-02T15:04:05-0700", grant["expires_at"].(string))
			if err != nil || !exp.Equal(e.clock.Now().Add(5*time.Minute)) || grant["type"] != "authorization_code" {
				t.Fatalf("grant %v (%v)", grant, err)
			}
			if x := e.token(t, grantForm(code)); x.status != 200 {
				t.Fatalf("exchange of the control grant: %d", x.status)
			}
			st := e.control(t, "GET", "/addons/"+id, "")
			if st.status != 200 || st.str("state") != "provisioning" || st.str("id") != id || st.str("name") == "" {
				t.Errorf("state %d %v", st.status, st.body)
			}
			if x := e.control(t, "POST", "/addons/"+id+"/expire-tokens", ""); x.status != 204 {
				t.Errorf("expire-tokens %d", x.status)
			}
		})
	}
}

func TestControlErrors(t *testing.T) {
	tests := []struct {
		method, path, body string
		status             int
	}{
		{"POST", "/addons", `{`, 400},
		{"GET", "/addons/nope", ``, 404},
		{"POST", "/addons/nope/expire-tokens", ``, 404},
		{"POST", "/faults", `nope`, 400},
		{"POST", "/faults", `{"delay":"soon"}`, 422},
		{"POST", "/faults", `{"status":200}`, 422},
		{"GET", "/nowhere", ``, 404},
		{"PUT", "/calls", ``, 404},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path+" "+tt.body, func(t *testing.T) {
			e := start(t, herokusim.Options{})
			if a := e.control(t, tt.method, tt.path, tt.body); a.status != tt.status {
				t.Errorf("status %d, want %d: %v", a.status, tt.status, a.body)
			}
		})
	}
}

func TestControlFaultsAndCalls(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e := start(t, herokusim.Options{})
	tok, _ := e.tokens(t, idA)

	if a := e.control(t, "POST", "/faults", `{"kind":"get","status":503,"retry_after":"4","times":1}`); a.status != 204 {
		t.Fatalf("fault: %d %v", a.status, a.body)
	}
	a := e.api(t, call{method: "GET", path: "/addons/" + idA, token: tok})
	if a.status != 503 || a.header.Get("Retry-After") != "4" {
		t.Fatalf("faulted get: %d %v", a.status, a.header)
	}

	// A held fault stays until cleared and holds each call until released.
	if a := e.control(t, "POST", "/faults", `{"kind":"provision","addon_id":"`+idA+`","hold":true,"delay":"1ms"}`); a.status != 204 {
		t.Fatalf("hold fault: %d", a.status)
	}
	for round := range 2 {
		done := provisionAsync(ctx, e, tok)
		if err := e.sim.Wait(ctx, func() bool { return e.sim.Holding("provision") == 1 }); err != nil {
			t.Fatalf("round %d: never held: %v", round, err)
		}
		if x := e.control(t, "POST", "/release", ""); x.status != 204 {
			t.Fatalf("release: %d", x.status)
		}
		if st := <-done; st != 200 {
			t.Fatalf("round %d: status %d", round, st)
		}
	}
	if x := e.control(t, "DELETE", "/faults", ""); x.status != 204 {
		t.Fatalf("clear: %d", x.status)
	}
	if st := <-provisionAsync(ctx, e, tok); st != 200 {
		t.Fatalf("after clear: %d", st)
	}

	calls := e.control(t, "GET", "/calls", "")
	var got []string
	for _, c := range calls.list {
		m := c.(map[string]any)
		if m["addon_id"] != idA || m["request_id"] == "" || m["at"] == "" {
			t.Errorf("call %v", m)
		}
		got = append(got, m["kind"].(string))
	}
	if want := "grant get provision provision provision"; strings.Join(got, " ") != want {
		t.Errorf("calls %v, want %s", got, want)
	}
}
