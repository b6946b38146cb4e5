package kilntest

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// SkipMissing skips a test that needs a tool this machine lacks, and
// records why in the file KILN_SKIP_REPORT names (make test sets it and
// prints the file at the end), so a skipped browser or compose test is seen
// in the run's last lines, not only under -v.
func SkipMissing(tb testing.TB, why string) {
	tb.Helper()
	if path := os.Getenv("KILN_SKIP_REPORT"); path != "" {
		if f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			// One short write per line: appends from parallel test
			// binaries do not interleave.
			_, _ = fmt.Fprintf(f, "%s: %s\n", tb.Name(), strings.ReplaceAll(why, "\n", " "))
			f.Close()
		}
	}
	tb.Skip("SKIPPED: " + why)
}
