package logplex_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/herokusim"
	"github.com/kiln-dev/kiln/internal/logplex"
)

const id = "01234567-89ab-cdef-0123-456789abcdef"

func TestWriteLog(t *testing.T) {
	sim, srv := herokusim.NewServer(t, herokusim.Options{})
	sim.NewAddon(id)
	w := logplex.New("kiln", nil)
	ctx := context.Background()
	at := time.Date(2026, 3, 3, 18, 0, 0, 0, time.UTC)
	lines := []addon.LogLine{
		{At: at, Message: "Provisioning started on plan basic."},
		{At: at.Add(time.Second), Message: "Provisioning failed: cannot reach\npostgres://u:hunter2@db.example.com/x", Error: true},
		{At: at.Add(2 * time.Second), Message: "Plan κόσμε ready; api_key=abc123 token=t.42"},
	}
	u := sim.LogInputURL(srv.URL, id)
	if err := w.WriteLog(ctx, u, lines); err != nil {
		t.Fatal(err)
	}
	got := sim.Logs(id)
	if len(got) != 3 {
		t.Fatalf("the simulator parsed %d frames, want 3: %+v", len(got), got)
	}
	if got[0].Message != lines[0].Message || !got[0].Timestamp.Equal(at) || got[0].Priority != 134 || got[0].ProcID != "kiln" || got[0].AppName != "app" {
		t.Errorf("frame 0: %+v", got[0])
	}
	if got[1].Priority != 131 || strings.Contains(got[1].Raw, "hunter2") || strings.Contains(got[1].Raw, "\n") {
		t.Errorf("frame 1 (an error with a URL and a newline): %+v", got[1])
	}
	if strings.Contains(got[2].Raw, "abc123") || strings.Contains(got[2].Raw, "t.42") || !strings.Contains(got[2].Raw, "κόσμε") {
		t.Errorf("frame 2: %q", got[2].Raw)
	}

	sim.RotateLogToken(id)
	err := w.WriteLog(ctx, u, lines[:1])
	if addon.ErrorCode(err) != addon.EUNAUTHORIZED || strings.Contains(err.Error(), "token:") || strings.Contains(err.Error(), "t.") && strings.Contains(err.Error(), "@") {
		t.Errorf("a rotated URL: %v, want EUNAUTHORIZED without the URL's token", err)
	}
	sim.Inject(herokusim.Fault{Kind: herokusim.KindLogs, Status: http.StatusServiceUnavailable, Times: 1})
	if err := w.WriteLog(ctx, sim.LogInputURL(srv.URL, id), lines[:1]); addon.ErrorCode(err) != addon.EUNAVAILABLE {
		t.Errorf("a 503: %v, want EUNAVAILABLE", err)
	}
	if err := w.WriteLog(ctx, "https://token:t.secret@127.0.0.1:1/logs", lines[:1]); addon.ErrorCode(err) != addon.EUNAVAILABLE || strings.Contains(err.Error(), "t.secret") {
		t.Errorf("an unreachable drain: %v, want EUNAVAILABLE without the token", err)
	}
}
