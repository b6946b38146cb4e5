package asheroku

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"

	"github.com/kiln-dev/kiln/internal/addon"
)

// Manifest is Heroku's add-on manifest (addon-manifest.json): what Heroku
// knows about the add-on and how to call it. It holds the Partner API
// password and the SSO salt, so it is kept out of source control.
type Manifest struct {
	ID   string      `json:"id"`
	Name string      `json:"name"`
	API  ManifestAPI `json:"api"`
}

// ManifestAPI is the manifest's "api" object.
type ManifestAPI struct {
	ConfigVarsPrefix string    `json:"config_vars_prefix"`
	ConfigVars       []string  `json:"config_vars"`
	Password         string    `json:"password"`
	SSOSalt          string    `json:"sso_salt"`
	Regions          []string  `json:"regions"`
	Requires         []string  `json:"requires"`
	Production       Endpoints `json:"production"`
	Test             Endpoints `json:"test"`
	Version          string    `json:"version"`
}

// Endpoints are where Heroku sends Partner API calls and SSO forms.
type Endpoints struct {
	BaseURL string `json:"base_url"`
	SSOURL  string `json:"sso_url"`
}

// SecretLength is the length of the password and SSO salt Generate makes,
// and the least Validate accepts: Heroku's own generated manifests use 32
// random characters.
const SecretLength = 32

// TestURL is the Kiln the manifest's "test" endpoints point at: a local
// `make dev` (PORT 5000), where Heroku's old kensa tool expected it.
const TestURL = "http://localhost:5000"

// GenerateOptions say what to put in a new manifest. Empty Password and
// SSOSalt mean fresh random ones.
type GenerateOptions struct {
	ID         string   // ADDON_ID
	Name       string   // shown on Heroku's marketplace; default: ID
	Prefix     string   // ADDON_CONFIG_PREFIX; default: ID upper-cased, "-" as "_"
	ConfigVars []string // the driver's var suffixes ("URL"); the prefix is added
	URL        string   // Kiln's production root URL; must be https
	TestURL    string   // default TestURL
	Password   string
	SSOSalt    string
}

// Generate builds a manifest for a Kiln deployment and checks it with
// Validate, so what it returns can be pushed as is.
func Generate(o GenerateOptions) (*Manifest, error) {
	if o.ID == "" {
		return nil, errors.New("no add-on id: set ADDON_ID or pass --id")
	}
	if o.URL == "" {
		return nil, errors.New("no production URL: pass --url https://your-kiln.example.com")
	}
	if o.Name == "" {
		o.Name = o.ID
	}
	if o.Prefix == "" {
		o.Prefix = addon.DefaultPrefix(o.ID)
	}
	if o.TestURL == "" {
		o.TestURL = TestURL
	}
	if len(o.ConfigVars) == 0 {
		o.ConfigVars = []string{"URL"}
	}
	var err error
	if o.Password == "" {
		if o.Password, err = RandomSecret(SecretLength); err != nil {
			return nil, err
		}
	}
	if o.SSOSalt == "" {
		if o.SSOSalt, err = RandomSecret(SecretLength); err != nil {
			return nil, err
		}
	}
	vars := make([]string, 0, len(o.ConfigVars))
	for _, v := range o.ConfigVars {
		vars = append(vars, o.Prefix+"_"+v)
	}
	root := strings.TrimRight(o.URL, "/")
	test := strings.TrimRight(o.TestURL, "/")
	m := &Manifest{
		ID:   o.ID,
		Name: o.Name,
		API: ManifestAPI{
			ConfigVarsPrefix: o.Prefix,
			ConfigVars:       vars,
			Password:         o.Password,
			SSOSalt:          o.SSOSalt,
			Regions:          []string{"us", "eu"},
			Requires:         []string{},
			Production:       Endpoints{BaseURL: root + ResourcesPath, SSOURL: root + SSOPath},
			Test:             Endpoints{BaseURL: test + ResourcesPath, SSOURL: test + SSOPath},
			Version:          "3",
		},
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	if problems := Validate(b); len(problems) > 0 {
		return nil, fmt.Errorf("the generated manifest is not valid: %w", errors.Join(problems...))
	}
	return m, nil
}

const secretAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// RandomSecret returns n random alphanumeric characters: safe in a manifest,
// a config var, a shell command and a URL without quoting.
func RandomSecret(n int) (string, error) {
	out := make([]byte, 0, n)
	buf := make([]byte, n)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("random secret: %w", err)
		}
		for _, b := range buf {
			// 248 = 4*62: rejecting larger bytes keeps every character
			// equally likely.
			if b < 248 && len(out) < n {
				out = append(out, secretAlphabet[int(b)%len(secretAlphabet)])
			}
		}
	}
	return string(out), nil
}

// slug is the shape of an add-on id: lower-case letters, digits and dashes,
// starting with a letter and not ending with a dash. Heroku's exact rule
// (length included) is UNCONFIRMED; this is the conservative reading of the
// slugs it shows.
var slug = regexp.MustCompile(`^[a-z][a-z0-9-]*[a-z0-9]$`)

var varName = regexp.MustCompile(`^[A-Z][0-9A-Z_]+$`)

// knownRequires are the "requires" values Heroku documents (log_input and
// syslog_drain in the Partner API reference; attachable and many_per_app in
// the manifest reference). Others are refused: a typo would silently
// withdraw a feature.
var knownRequires = map[string]bool{"log_input": true, "syslog_drain": true, "attachable": true, "many_per_app": true}

// Validate checks a manifest the way Heroku's tooling (and kensa before it)
// did: its shape, the id slug, secret lengths, config var names and the
// endpoints. It returns every problem found, each naming the field, and
// nothing for a good manifest. Unknown fields (such as the "$base" Heroku
// adds on pull) are tolerated.
func Validate(data []byte) []error {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&m); err != nil {
		return []error{shapeError(err)}
	}
	if _, err := dec.Token(); err != io.EOF {
		return []error{errors.New("the manifest has trailing data after its JSON object")}
	}
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	var top map[string]json.RawMessage
	_ = json.Unmarshal(data, &top)
	if _, ok := top["api"]; !ok {
		bad("api", "is missing")
		return errs
	}

	switch {
	case m.ID == "":
		bad("id", "is required (the add-on slug, also the Partner API user name)")
	case !slug.MatchString(m.ID):
		bad("id", "%q is not a slug: use lower-case letters, digits and dashes, starting with a letter", m.ID)
	}
	if strings.TrimSpace(m.Name) == "" {
		bad("name", "is required")
	}
	a := m.API
	if a.Version != "3" {
		bad("api.version", "must be \"3\" (Kiln speaks Partner API v3), got %q", a.Version)
	}
	checkSecret := func(field, v string) {
		switch {
		case v == "":
			bad(field, "is required")
		case len(v) < SecretLength:
			bad(field, "is %d characters; use at least %d random characters (kiln-heroku manifest generate makes one)", len(v), SecretLength)
		}
	}
	checkSecret("api.password", a.Password)
	checkSecret("api.sso_salt", a.SSOSalt)

	prefix := a.ConfigVarsPrefix
	if prefix == "" {
		prefix = addon.DefaultPrefix(m.ID)
	} else if !addon.ValidPrefix(prefix) {
		bad("api.config_vars_prefix", "%q cannot start Heroku config var names (^[A-Z][0-9A-Z_]+$)", prefix)
	}
	if len(a.ConfigVars) == 0 {
		bad("api.config_vars", "must list the config vars the add-on sets (at least %s_URL)", prefix)
	}
	for i, v := range a.ConfigVars {
		field := fmt.Sprintf("api.config_vars[%d]", i)
		if !varName.MatchString(v) {
			bad(field, "%q does not match ^[A-Z][0-9A-Z_]+$", v)
		}
		if !strings.HasPrefix(v, prefix+"_") {
			bad(field, "%q does not start with the prefix %q", v, prefix+"_")
		}
	}

	if len(a.Regions) == 0 {
		bad("api.regions", "must list at least one region, such as \"us\"")
	}
	for i, r := range a.Regions {
		if strings.TrimSpace(r) == "" {
			bad(fmt.Sprintf("api.regions[%d]", i), "is empty")
		}
	}
	for i, r := range a.Requires {
		if !knownRequires[r] {
			bad(fmt.Sprintf("api.requires[%d]", i), "%q is not a feature Heroku knows (log_input, syslog_drain, attachable, many_per_app)", r)
		}
	}

	checkEndpoints := func(env string, e Endpoints, httpsOnly bool) {
		checkURL := func(field, v, suffix string) {
			field = "api." + env + "." + field
			if v == "" {
				bad(field, "is required")
				return
			}
			u, err := url.Parse(v)
			if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
				bad(field, "%q is not an absolute http(s) URL", v)
				return
			}
			if httpsOnly && u.Scheme != "https" {
				bad(field, "%q must use https: Heroku sends credentials to it", v)
			}
			if suffix != "" && !strings.HasSuffix(strings.TrimRight(u.Path, "/"), suffix) {
				bad(field, "%q must end with %s (where Kiln serves the Partner API)", v, suffix)
			}
		}
		checkURL("base_url", e.BaseURL, ResourcesPath)
		checkURL("sso_url", e.SSOURL, "")
	}
	checkEndpoints("production", a.Production, true)
	if a.Test != (Endpoints{}) {
		checkEndpoints("test", a.Test, false)
	}
	return errs
}

// shapeError turns a JSON decoding error into a message naming the field.
func shapeError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = "the manifest"
		}
		return fmt.Errorf("%s: must be %s, not a JSON %s", field, jsonKind(te.Type.Kind().String()), te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("the manifest is not valid JSON (at byte %d): %w", se.Offset, err)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return errors.New("the manifest is not valid JSON: it ends before its object is closed")
	}
	return fmt.Errorf("the manifest is not valid JSON: %w", err)
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "slice":
		return "an array of strings"
	case "struct", "map":
		return "an object"
	default:
		return "a " + goKind
	}
}
