package devenv

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Var
		wantErr string
	}{
		{"plain", "A=1\nB=two words\n", []Var{{"A", "1"}, {"B", "two words"}}, ""},
		{"comments and blanks", "# header\n\n  A=1  \n# B=2\n", []Var{{"A", "1"}}, ""},
		{"export and quotes", "export A='x y'\nB=\"q\"\nC='\n", []Var{{"A", "x y"}, {"B", "q"}, {"C", "'"}}, ""},
		{"equals in value", "URL=postgres://u@h/db?sslmode=disable&x=1\n", []Var{{"URL", "postgres://u@h/db?sslmode=disable&x=1"}}, ""},
		{"later wins", "A=1\nB=2\nA=3\n", []Var{{"A", "3"}, {"B", "2"}}, ""},
		{"empty value", "A=\n", []Var{{"A", ""}}, ""},
		{"no equals", "A\n", nil, "line 1"},
		{"bad key", "1A=x\n", nil, "line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("var %d = %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestWriteReadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "env")
	if _, err := Read(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Read of a missing file = %v, want os.ErrNotExist", err)
	}
	vars := []Var{
		{"PORT", "5000"},
		{"DATABASE_URL", "postgres://postgres@127.0.0.1:5432/kiln_dev?sslmode=disable"},
		{"KEY", "abc+/def=="},
		{"ODD", "a b&c $HOME"},
		{"EMPTY", ""},
	}
	if err := Write(path, "generated\nby a test", vars); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600: the file holds secrets", fi.Mode().Perm())
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range vars {
		if got[i] != vars[i] {
			t.Errorf("var %d = %v, want %v", i, got[i], vars[i])
		}
	}
	raw, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(raw), "# generated\n# by a test\n") {
		t.Errorf("header missing:\n%s", raw)
	}

	// A shell sourcing the file sees the same values.
	if _, err := exec.LookPath("sh"); err == nil {
		out, err := exec.Command("sh", "-c", `set -a; . "$0"; printf '%s|%s|%s' "$KEY" "$ODD" "$DATABASE_URL"`, path).Output()
		if err != nil {
			t.Fatal(err)
		}
		if want := "abc+/def==|a b&c $HOME|" + vars[1].Value; string(out) != want {
			t.Errorf("sourced values = %q, want %q", out, want)
		}
	}
}

func TestWriteRefuses(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		v    Var
	}{
		{"newline", Var{"A", "x\ny"}},
		{"bad key", Var{"A-B", "x"}},
		{"quote with metacharacters", Var{"A", "it's $x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Write(filepath.Join(dir, "env"), "", []Var{tt.v}); err == nil {
				t.Fatalf("Write accepted %v", tt.v)
			}
		})
	}
}
