package asheroku

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateManifests(t *testing.T) {
	tests := []struct {
		file string
		want []string // substrings that must each appear in some problem; none for a good manifest
	}{
		{"good.json", nil},
		{"good-pulled.json", nil},
		{"bad-id-not-slug.json", []string{`id: "My_Addon" is not a slug`}},
		{"bad-id-missing.json", []string{"id: is required"}},
		{"bad-name-missing.json", []string{"name: is required"}},
		{"bad-short-password.json", []string{"api.password: is 5 characters"}},
		{"bad-short-salt.json", []string{"api.sso_salt: is 5 characters"}},
		{"bad-var-lowercase.json", []string{`api.config_vars[0]: "KILN_url" does not match`}},
		{"bad-var-prefix.json", []string{`api.config_vars[0]: "OTHER_URL" does not start with the prefix "KILN_"`}},
		{"bad-no-config-vars.json", []string{"api.config_vars: must list"}},
		{"bad-prefix.json", []string{`api.config_vars_prefix: "kiln" cannot start`}},
		{"bad-http-production.json", []string{"api.production.base_url", "must use https"}},
		{"bad-http-sso.json", []string{"api.production.sso_url", "must use https"}},
		{"bad-base-url-path.json", []string{"api.production.base_url", "must end with /heroku/resources"}},
		{"bad-test-url.json", []string{"api.test.base_url", "not an absolute http(s) URL"}},
		{"bad-version.json", []string{`api.version: must be "3"`}},
		{"bad-version-number.json", []string{"api.version: must be a string, not a JSON number"}},
		{"bad-regions-string.json", []string{"api.regions: must be an array of strings, not a JSON string"}},
		{"bad-regions-empty.json", []string{"api.regions: must list at least one region"}},
		{"bad-requires.json", []string{`api.requires[0]: "log-input" is not a feature`}},
		{"bad-no-api.json", []string{"api: is missing"}},
		{"bad-not-json.json", []string{"not valid JSON"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "manifests", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			problems := Validate(data)
			if len(tt.want) == 0 {
				if len(problems) != 0 {
					t.Fatalf("Validate found problems in a good manifest: %v", problems)
				}
				return
			}
			if len(problems) == 0 {
				t.Fatalf("Validate accepted %s; want a problem mentioning %q", tt.file, tt.want)
			}
			all := make([]string, len(problems))
			for i, p := range problems {
				all[i] = p.Error()
			}
			joined := strings.Join(all, "\n")
			for _, w := range tt.want {
				if !strings.Contains(joined, w) {
					t.Errorf("problems do not mention %q:\n%s", w, joined)
				}
			}
		})
	}
}

func TestGenerateValidates(t *testing.T) {
	tests := []struct {
		name string
		o    GenerateOptions
		vars []string
	}{
		{"defaults", GenerateOptions{ID: "kiln", URL: "https://kiln.example.com"}, []string{"KILN_URL"}},
		{"dashed id", GenerateOptions{ID: "acme-db", URL: "https://db.acme.test/", ConfigVars: []string{"URL", "API_KEY"}}, []string{"ACME_DB_URL", "ACME_DB_API_KEY"}},
		{"own prefix", GenerateOptions{ID: "kiln", Prefix: "FIRE", URL: "https://kiln.example.com"}, []string{"FIRE_URL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Generate(tt.o)
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if p := Validate(b); len(p) != 0 {
				t.Fatalf("generated manifest does not validate: %v", p)
			}
			if strings.Join(m.API.ConfigVars, ",") != strings.Join(tt.vars, ",") {
				t.Errorf("config_vars = %v, want %v", m.API.ConfigVars, tt.vars)
			}
			if len(m.API.Password) != SecretLength || len(m.API.SSOSalt) != SecretLength || m.API.Password == m.API.SSOSalt {
				t.Errorf("want two distinct fresh %d-character secrets, got %d and %d", SecretLength, len(m.API.Password), len(m.API.SSOSalt))
			}
			if !strings.HasSuffix(m.API.Production.BaseURL, "/heroku/resources") || strings.Contains(m.API.Production.BaseURL, "//heroku") {
				t.Errorf("production base_url = %q", m.API.Production.BaseURL)
			}
			if m.API.Test.BaseURL != "http://localhost:5000/heroku/resources" || m.API.Test.SSOURL != "http://localhost:5000/sso/login" {
				t.Errorf("test endpoints = %+v", m.API.Test)
			}
		})
	}
}

func TestGenerateRefuses(t *testing.T) {
	tests := []struct {
		name string
		o    GenerateOptions
		want string
	}{
		{"no id", GenerateOptions{URL: "https://kiln.example.com"}, "no add-on id"},
		{"no url", GenerateOptions{ID: "kiln"}, "no production URL"},
		{"http url", GenerateOptions{ID: "kiln", URL: "http://kiln.example.com"}, "must use https"},
		{"bad prefix", GenerateOptions{ID: "kiln", Prefix: "kiln", URL: "https://kiln.example.com"}, "config_vars_prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Generate(tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Generate error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestRandomSecret(t *testing.T) {
	seen := map[string]bool{}
	for range 20 {
		s, err := RandomSecret(SecretLength)
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != SecretLength || strings.Trim(s, secretAlphabet) != "" {
			t.Fatalf("RandomSecret = %q, want %d alphanumeric characters", s, SecretLength)
		}
		if seen[s] {
			t.Fatalf("RandomSecret repeated %q", s)
		}
		seen[s] = true
	}
}
