package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSSOOpenReportsAFailedOpener: when no opener can show the page (here:
// xdg-open exists but fails, as it does without a browser), sso --open says
// so, prints the file to open by hand and exits non-zero; with a working
// opener it succeeds.
func TestSSOOpenReportsAFailedOpener(t *testing.T) {
	bin := t.TempDir()
	opened := filepath.Join(t.TempDir(), "opened")
	script := func(body string) {
		if err := os.WriteFile(filepath.Join(bin, "xdg-open"), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin) // no sensible-browser or x-www-browser either
	env := map[string]string{"ADDON_ID": "kiln", "ADDON_PASSWORD": "pw", "ADDON_SSO_SALT": "salty", "PORT": "5123"}
	out := filepath.Join(t.TempDir(), "sso.html")

	script(`echo "xdg-open: no method available for opening '$1'" >&2; exit 3`)
	code, _, stderr := cmd(t, env, "sso", "01234567-89ab-cdef-0123-456789abcdef", "--out", out, "--open")
	if code == 0 || !strings.Contains(stderr, "could not open a browser") || !strings.Contains(stderr, "no method available") || !strings.Contains(stderr, out) {
		t.Errorf("failing opener: exit %d, stderr:\n%s\nwant a non-zero exit naming the failure and %s", code, stderr, out)
	}

	script(`echo "$1" > ` + opened)
	code, _, stderr = cmd(t, env, "sso", "01234567-89ab-cdef-0123-456789abcdef", "--out", out, "--open")
	if code != 0 {
		t.Fatalf("working opener: exit %d: %s", code, stderr)
	}
	if b, err := os.ReadFile(opened); err != nil || !strings.Contains(string(b), "file://"+out) {
		t.Errorf("the opener got %q (%v)", b, err)
	}
}
