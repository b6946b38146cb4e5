package kiln

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/config"
)

// TestConfigure: the logger tags each line with the process and the dyno,
// at the configured level, and a bad environment is refused whole.
func TestConfigure(t *testing.T) {
	env := map[string]string{"DATABASE_URL": "postgres://kiln@127.0.0.1:5432/kiln", "LOG_LEVEL": "warn", "DYNO": "release.1"}
	var out bytes.Buffer
	cfg, log, err := Configure(func(k string) string { return env[k] }, &out, config.Release)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DatabaseURL != env["DATABASE_URL"] {
		t.Errorf("DatabaseURL = %q", cfg.DatabaseURL)
	}
	log.Info("hidden")
	log.Warn("shown")
	if got := out.String(); strings.Contains(got, "hidden") || !strings.Contains(got, "process=release") || !strings.Contains(got, "dyno=release.1") {
		t.Errorf("log = %q; want only the warning, tagged with process and dyno", got)
	}

	if _, _, err := Configure(func(string) string { return "" }, &out, config.Release); err == nil || !strings.Contains(err.Error(), "DATABASE_URL") {
		t.Errorf("Configure without DATABASE_URL = %v; want the variable named", err)
	}
}
