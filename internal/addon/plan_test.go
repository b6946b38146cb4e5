package addon

import (
	"strings"
	"testing"
)

// TestParseShownCatalog: a driver that only shows limits takes any names,
// each at least 0, under the rules every catalog shares.
func TestParseShownCatalog(t *testing.T) {
	tests := []struct {
		name, data, err string
	}{
		{"any limits", `{"plans":[{"slug":"test","limits":{"widgets":3}},{"slug":"basic","name":"B","limits":{"widgets":30,"seats":0}}]}`, ""},
		{"negative limit", `{"plans":[{"slug":"test","limits":{"widgets":-1}},{"slug":"basic"}]}`, `plan "test": limit "widgets" must be named and at least 0`},
		{"unnamed limit", `{"plans":[{"slug":"test","limits":{"":1}},{"slug":"basic"}]}`, `limit "" must be named`},
		{"slug Heroku refuses", `{"plans":[{"slug":"Test"},{"slug":"basic"}]}`, `plan #1: slug "Test" is not a Heroku plan slug`},
		{"misspelt key", `{"plans":[{"slug":"test","nmae":"T"},{"slug":"basic"}]}`, "unknown field"},
		{"contract plans missing", `{"plans":[{"slug":"pro"}]}`, `no "test" plan`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseShownCatalog([]byte(tt.data))
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c["basic"].Limits["widgets"] != 30 || c["basic"].Name != "B" || c["test"].Name != "test" {
					t.Errorf("catalog = %+v, want limits and names kept, a missing name the slug", c)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseShownCatalog error = %v, want one containing %q", err, tt.err)
			}
		})
	}
}

// TestParseCatalogSlugsAndNames: the rules ParseCatalog shares with
// ParseShownCatalog hold for drivers that enforce their limits too.
func TestParseCatalogSlugsAndNames(t *testing.T) {
	c, err := ParseCatalog([]byte(`{"plans":[{"slug":"test","limits":{"n":1}},{"slug":"basic","name":"Basic","limits":{"n":2}}]}`), "n")
	if err != nil {
		t.Fatal(err)
	}
	if c["test"].Name != "test" || c["basic"].Name != "Basic" {
		t.Errorf("names = %q, %q; want the slug for a plan without one", c["test"].Name, c["basic"].Name)
	}
	_, err = ParseCatalog([]byte(`{"plans":[{"slug":"test","limits":{"n":1}},{"slug":"basic plan","limits":{"n":2}}]}`), "n")
	if err == nil || !strings.Contains(err.Error(), `slug "basic plan" is not a Heroku plan slug`) {
		t.Errorf("ParseCatalog error = %v, want the slug refused", err)
	}
}
