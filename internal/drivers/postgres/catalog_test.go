package postgres

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadCatalogDefault(t *testing.T) {
	c, err := LoadCatalog("")
	if err != nil {
		t.Fatalf("the shipped catalog is invalid: %v", err)
	}
	for _, slug := range []string{"test", "basic"} {
		p, err := c.Lookup(slug)
		if err != nil {
			t.Fatalf("shipped catalog: %v", err)
		}
		if p.Limits[LimitConnections] <= 0 || p.Limits[LimitSizeBytes] <= 0 {
			t.Errorf("plan %s has limits %v", slug, p.Limits)
		}
	}
}

func TestLoadCatalogErrors(t *testing.T) {
	tests := []struct {
		file string
		want []string // every piece must appear in the error
	}{
		{"bad-no-connection-limit.json", []string{`plan "basic"`, "connection_limit must be a number above 0"}},
		{"bad-negative-connections.json", []string{`plan "test"`, "connection_limit"}},
		{"bad-zero-size.json", []string{`plan "test"`, "size_limit_bytes must be a number above 0"}},
		{"bad-unknown-limit.json", []string{`plan "basic"`, "unknown limit conection_limit"}},
		{"bad-unknown-field.json", []string{`unknown field "limts"`}},
		{"bad-duplicate.json", []string{`plan "basic" is listed twice`}},
		{"bad-no-basic.json", []string{`no "basic" plan`}},
		{"bad-not-json.json", []string{"not a valid catalog"}},
		{"does-not-exist.json", []string{"no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", tt.file)
			_, err := LoadCatalog(path)
			if err == nil {
				t.Fatal("LoadCatalog succeeded; want an error")
			}
			for _, w := range append(tt.want, path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadCatalogFile(t *testing.T) {
	c, err := LoadCatalog(filepath.Join("testdata", "plans.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c["tiny"].Limits[LimitSizeBytes]; got != 1<<20 {
		t.Errorf("tiny size limit = %d, want %d", got, 1<<20)
	}
	if got := c["basic"].Name; got != "Basic" {
		t.Errorf("basic name = %q", got)
	}
}
