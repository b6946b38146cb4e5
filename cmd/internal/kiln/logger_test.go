package kiln

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/addon"
)

func TestLoggerRequestIDs(t *testing.T) {
	var b bytes.Buffer
	env := map[string]string{"DYNO": "web.1"}
	log := Logger(&b, func(k string) string { return env[k] }, "info").With("process", "web")
	ctx := addon.WithRequestID(context.Background(), "req-123")

	tests := []struct {
		name string
		log  func()
		want []string
		not  string
	}{
		{"a line logged while serving a request names it", func() { log.WarnContext(ctx, "enqueue failed", "addon", "a1") },
			[]string{"level=WARN", `msg="enqueue failed"`, "dyno=web.1", "process=web", "addon=a1", "request_id=req-123"}, ""},
		{"once, when the line names it already", func() { log.InfoContext(ctx, "request", "request_id", "req-123") },
			[]string{"request_id=req-123"}, "request_id=req-123 request_id"},
		{"none outside a request", func() { log.Info("started") }, []string{`msg=started`}, "request_id"},
		{"below the level, nothing", func() { log.DebugContext(ctx, "noise") }, nil, "noise"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b.Reset()
			tt.log()
			line := b.String()
			for _, w := range tt.want {
				if !strings.Contains(line, w) {
					t.Errorf("line %q lacks %q", line, w)
				}
			}
			if tt.not != "" && strings.Contains(line, tt.not) {
				t.Errorf("line %q contains %q", line, tt.not)
			}
			if strings.Count(line, "request_id=") > 1 {
				t.Errorf("line %q names the request twice", line)
			}
		})
	}
}
