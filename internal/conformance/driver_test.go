package conformance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/conformance"
	httpdriver "github.com/kiln-dev/kiln/internal/drivers/http"
)

const driverSecret = "driver-check-secret-0123456789abcdef"

// fakeService is a minimal partner service; lax skips signature checks,
// pending answers 202 to the first create of each id.
type fakeService struct {
	lax, pending bool
	mu           sync.Mutex
	live         map[string]string // id -> URL
	polled       map[string]bool
}

func (f *fakeService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	reply := func(status int, v any) {
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	if !f.lax {
		if err := httpdriver.Verify(driverSecret, r.Header.Get("Kiln-Signature"), time.Now(), r.Method, r.URL.EscapedPath(), body); err != nil {
			reply(401, map[string]string{"message": err.Error()})
			return
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	id := strings.TrimPrefix(strings.TrimSuffix(r.URL.Path, "/actions/rotate-credentials"), "/resources/")
	switch {
	case r.Method == "POST" && r.URL.Path == "/resources":
		var b struct{ ID string }
		json.Unmarshal(body, &b)
		if _, ok := f.live[b.ID]; !ok {
			f.live[b.ID] = "https://u:" + b.ID + "@svc.example.com"
			if f.pending {
				reply(202, map[string]string{"message": "creating"})
				return
			}
		}
		reply(201, map[string]any{"config": map[string]string{"URL": f.live[b.ID]}})
	case r.Method == "GET":
		if u, ok := f.live[id]; ok {
			reply(200, map[string]any{"config": map[string]string{"URL": u}})
			return
		}
		reply(404, map[string]string{"message": "no such resource"})
	case r.Method == "PUT":
		reply(200, map[string]string{})
	case r.Method == "POST":
		reply(501, map[string]string{"message": "no rotation"})
	case r.Method == "DELETE":
		if _, ok := f.live[id]; !ok {
			reply(404, map[string]string{"message": "no such resource"})
			return
		}
		delete(f.live, id)
		w.WriteHeader(204)
	}
}

func TestRunDriver(t *testing.T) {
	tests := []struct {
		name   string
		svc    *fakeService
		ok     bool
		failed []string
	}{
		{"conforming", &fakeService{}, true, nil},
		{"conforming with 202", &fakeService{pending: true}, true, nil},
		{"skips signature checks", &fakeService{lax: true}, false,
			[]string{conformance.DriverUnsigned, conformance.DriverStale, conformance.DriverWrongSecret, conformance.DriverTampered, conformance.DriverUnsignedDelete}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.svc.live = map[string]string{}
			srv := httptest.NewServer(tt.svc)
			defer srv.Close()
			rep := conformance.RunDriver(context.Background(), conformance.DriverOptions{URL: srv.URL, Secret: driverSecret, Timeout: 5 * time.Second})
			var table bytes.Buffer
			rep.WriteTable(&table)
			if rep.OK() != tt.ok {
				t.Fatalf("OK = %v, want %v\n%s", rep.OK(), tt.ok, table.String())
			}
			failed := map[string]bool{}
			for _, r := range rep.Results {
				if r.Status == conformance.Fail {
					failed[r.Name] = true
				}
			}
			if len(failed) != len(tt.failed) {
				t.Errorf("failed %d checks, want %d\n%s", len(failed), len(tt.failed), table.String())
			}
			for _, n := range tt.failed {
				if !failed[n] {
					t.Errorf("%q did not fail\n%s", n, table.String())
				}
			}
			if len(tt.svc.live) != 0 {
				t.Errorf("the run left %d resources behind", len(tt.svc.live))
			}
		})
	}
}
