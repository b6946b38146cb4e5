package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/herokusim"
	"github.com/kiln-dev/kiln/internal/kilntest"
	"github.com/kiln-dev/kiln/internal/web"
)

// docs/operator-api.md is generated from operator_schema.json by this file:
// TestOperatorDocs fails when the committed copy is stale, and
//
//	go generate ./internal/web      (runs KILN_UPDATE_DOCS=1 go test -run TestOperatorDocs)
//
// rewrites it. TestOperatorDocExamples runs every curl example of the docs
// against a live server, so the examples cannot rot either.

const opDocsPath = "../../docs/operator-api.md"

// The add-on the examples name.
const (
	exampleID   = "01234567-89ab-cdef-0123-456789abcdef"
	exampleName = "acme-inc-primary-database"
)

func TestOperatorDocs(t *testing.T) {
	spec := loadOpSpec(t)
	got := renderOpDocs(spec)
	if os.Getenv("KILN_UPDATE_DOCS") == "1" {
		if err := os.WriteFile(opDocsPath, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(opDocsPath)
	if err != nil {
		t.Fatalf("%v (generate it: go generate ./internal/web)", err)
	}
	if string(want) != got {
		t.Errorf("%s is stale: regenerate it with `go generate ./internal/web` and commit it", filepath.Clean(opDocsPath))
	}
}

// curlCommand is the documented example of an operation, for a shell with
// KILN_URL and ADMIN_PASSWORD set.
func curlCommand(spec *opSpec, o *opOperation) string {
	ex := opMap(o.op["x-example"])
	path := opString(ex["path"])
	if q := opString(ex["query"]); q != "" {
		path += "?" + q
	}
	lines := []string{fmt.Sprintf(`curl -sS "$KILN_URL%s%s"`, opServer, path)}
	if o.method != http.MethodGet {
		lines[0] = fmt.Sprintf(`curl -sS -X %s "$KILN_URL%s%s"`, o.method, opServer, path)
	}
	lines = append(lines,
		fmt.Sprintf(`-H "Accept: %s"`, opString(spec.doc["x-media-type"])),
		`-H "Authorization: Bearer $ADMIN_PASSWORD"`)
	headers := opMap(ex["headers"])
	for _, k := range opKeys(headers) {
		lines = append(lines, fmt.Sprintf(`-H "%s: %s"`, k, opString(headers[k])))
	}
	if body, ok := ex["body"]; ok {
		lines = append(lines, `-H "Content-Type: application/json"`, fmt.Sprintf(`-d '%s'`, mustJSON(body)))
	}
	return strings.Join(lines, " \\\n  ")
}

// renderOpDocs writes the Markdown documentation of the schema.
func renderOpDocs(spec *opSpec) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	info := opMap(spec.doc["info"])
	media := opString(spec.doc["x-media-type"])
	p("# %s (version %s)\n\n", opString(info["title"]), opString(info["version"]))
	p("<!-- Generated from internal/web/operator_schema.json by `go generate ./internal/web`; do not edit by hand. -->\n\n")
	p("%s\n\n", opString(info["description"]))
	p("The machine-readable schema (OpenAPI 3.1) is served at `GET %s/schema`; this page is generated from it.\n\n", opServer)

	p("## Basics\n\n")
	p("**Base URL and credentials.** Every endpoint is under `%s` on the Kiln web process. Send the admin password (`ADMIN_PASSWORD`) as `Authorization: Bearer <password>` or as Basic credentials with user `admin`. The examples assume:\n\n", opServer)
	p("```sh\nexport KILN_URL=https://<your-kiln-app>.herokuapp.com\nexport ADMIN_PASSWORD=...\n```\n\n")
	p("**Versioning.** Every request must ask for a version in the Accept header: `Accept: %s`. Without a version the answer is 400 [`missing_version`](#error-missing_version); an unknown version is 406 [`not_acceptable`](#error-not_acceptable). There is no default version, so a future version 2 cannot change what existing scripts get.\n\n", media)
	p("**Request ids.** Every answer carries `Request-Id`: yours if you sent a `Request-Id` (or `X-Request-Id`) header of up to 200 safe characters, a fresh uuid otherwise. Kiln's log lines carry it too.\n\n")
	p("**Rate limit.** A token bucket per credential (per client IP before authentication, so guessing the password is limited too): bursts of %d requests, refilled at %d a minute, shared by all web dynos through Redis (each dyno limits on its own while Redis is unreachable). Every answer carries `RateLimit-Remaining`; an empty bucket answers 429 [`rate_limit`](#error-rate_limit) with `Retry-After`.\n\n", web.DefaultOperatorBurst, web.DefaultOperatorPerMinute)
	p("**Caching.** Successful answers carry an `ETag`. Send it back in `If-None-Match` to get `304 Not Modified` with no body when nothing changed.\n\n")
	p("**Pagination.** `GET %s/resources` answers one page at a time. Ask with a `Range` header: `<field> [<start>]..[; max=<n>][, order=asc|desc]`, where the field is `id` (the default) or `created_at` (the list is in `Accept-Ranges`), a start prefixed with `]` is exclusive, max defaults to 200 and is at most 1000. When more remain the answer is `206 Partial Content` with a `Next-Range` header: send it back as `Range` to get the next page, until an answer is `200`. `Content-Range` names the first and last values of the page. Pages are keyset-based: an add-on created meanwhile is neither skipped nor repeated.\n\n", opServer)
	p("```sh\n# every failed add-on, newest first, 50 at a time\ncurl -sS -i \"$KILN_URL%s/resources?state=failed\" \\\n  -H \"Accept: %s\" -H \"Authorization: Bearer $ADMIN_PASSWORD\" \\\n  -H \"Range: created_at ..; max=50, order=desc\"\n```\n\n", opServer, media)
	p("**Representations.** Ids are lower-case uuids, timestamps UTC ISO 8601 (`2012-01-01T12:00:00Z`), related objects are nested (`\"plan\": {\"id\": …, \"name\": \"basic\"}`), and every successful answer carries the full representation. Secrets are never shown: no OAuth tokens, no config var values (their names are), no log drain token.\n\n")
	p("**Output.** JSON is minified; add `?pretty=true` to any request for indented JSON.\n\n")
	p("**Errors.** Every error is `{\"id\": \"…\", \"message\": \"…\", \"url\": \"…\"}`: `id` is stable and listed [below](#errors), `message` is for humans, `url` links to the id's section of this page.\n\n")
	p("**Stability.** Each endpoint is marked: *production* (changes only in a new version), *development* (may change, with notice), *prototype* (may change or go away without notice), as in Heroku's API compatibility policy.\n\n")

	p("## Endpoints\n\n")
	p("| Endpoint | | Stability |\n|---|---|---|\n")
	for _, o := range spec.ops {
		p("| [%s](#%s) | `%s %s%s` | %s |\n", opString(o.op["summary"]), anchor(opString(o.op["summary"])), o.method, opServer, o.template, opString(o.op["x-stability"]))
	}
	p("\n")
	for _, o := range spec.ops {
		p("### %s\n\n", opString(o.op["summary"]))
		p("`%s %s%s` — stability: **%s**\n\n", o.method, opServer, o.template, opString(o.op["x-stability"]))
		p("%s\n\n", opString(o.op["description"]))
		params := spec.parameters(o)
		if len(params) > 0 {
			p("| Parameter | In | Description |\n|---|---|---|\n")
			for _, prm := range params {
				m, _ := spec.resolve(opMap(spec.at(strings.TrimSuffix(prm.schema, "/schema"))), "")
				p("| `%s` | %s | %s |\n", prm.name, prm.in, cell(opString(m["description"])))
			}
			p("\n")
		}
		if rb, ok := o.op["requestBody"]; ok {
			sch := opMap(opMap(opMap(opMap(rb)["content"])["application/json"])["schema"])
			p("Body (optional): %s\n\n", typeName(spec, sch))
		}
		p("| Status | Answer |\n|---|---|\n")
		responses := opMap(o.op["responses"])
		for _, code := range opKeys(responses) {
			resp, _ := spec.resolve(opMap(responses[code]), "")
			desc := opString(resp["description"])
			if st, _ := strconv.Atoi(code); st >= 400 {
				desc = errorLinks(spec, st)
			} else if c, ok := resp["content"]; ok {
				sch := opMap(opMap(opMap(c)["application/json"])["schema"])
				desc += " Body: " + typeName(spec, sch) + "."
			}
			p("| %s | %s |\n", code, cell(desc))
		}
		p("\n```sh\n%s\n```\n\n", curlCommand(spec, o))
	}

	p("## Representations\n\n")
	schemas := opMap(opMap(spec.doc["components"])["schemas"])
	for _, name := range []string{"resource", "event", "plan", "error"} {
		s := opMap(schemas[name])
		p("### %s\n\n%s\n\n", name, opString(s["description"]))
		p("| Attribute | Type | Description |\n|---|---|---|\n")
		props := opMap(s["properties"])
		order := propertyOrder(name)
		if sorted := slices.Sorted(slices.Values(order)); !slices.Equal(sorted, opKeys(props)) {
			order = opKeys(props) // the file's layout changed: fall back to sorted
		}
		for _, k := range order {
			prop := opMap(props[k])
			resolved, _ := spec.resolve(prop, "")
			desc := opString(prop["description"])
			if desc == "" {
				desc = opString(resolved["description"])
			}
			p("| `%s` | %s | %s |\n", k, typeName(spec, prop), cell(desc))
			if k == "steps" {
				// Pipeline order first; any step added later follows, sorted.
				order := []string{"grant_exchanged_at", "resource_created_at", "config_pushed_at", "provisioned_at", "deprovisioned_at"}
				for _, sk := range opKeys(opMap(resolved["properties"])) {
					if !slices.Contains(order, sk) {
						order = append(order, sk)
					}
				}
				for _, sk := range order {
					step := opMap(opMap(resolved["properties"])[sk])
					p("| `steps.%s` | %s | %s |\n", sk, typeName(spec, step), cell(opString(step["description"])))
				}
			}
		}
		p("\n")
	}

	p("## Errors\n\n")
	for _, e := range opSlice(spec.doc["x-errors"]) {
		m := opMap(e)
		st := int(m["status"].(float64))
		p("### Error `%s`\n\n**%d %s.** %s\n\n", opString(m["id"]), st, http.StatusText(st), opString(m["description"]))
	}
	return b.String()
}

// propertyOrder is the schema's property order (the JSON object keeps it,
// a Go map does not), read back from the file.
func propertyOrder(schema string) []string {
	raw, err := os.ReadFile(opSchemaFile)
	if err != nil {
		return nil
	}
	// The property names of a component are the keys indented one level
	// deeper than "properties" inside that component.
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	var out []string
	inSchemas, inSchema, inProps, depth := false, false, false, ""
	key := regexp.MustCompile(`^(\s*)"([^"]+)": `)
	for sc.Scan() {
		line := sc.Text()
		m := key.FindStringSubmatch(line)
		switch {
		case m != nil && m[2] == "schemas" && len(m[1]) == 4:
			inSchemas = true
		case inSchemas && !inSchema && m != nil && m[2] == schema && len(m[1]) == 6:
			inSchema = true
		case inSchema && m != nil && m[2] == "properties" && len(m[1]) == 8:
			inProps, depth = true, m[1]+"  "
		case inProps && m != nil && m[1] == depth:
			out = append(out, m[2])
		case inProps && strings.HasPrefix(line, strings.TrimSuffix(depth, "  ")+"}"):
			return out
		}
	}
	return out
}

// typeName describes a schema for humans.
func typeName(spec *opSpec, s map[string]any) string {
	if ref := opString(s["$ref"]); ref != "" {
		name := ref[strings.LastIndex(ref, "/")+1:]
		switch name {
		case "uuid", "timestamp", "state":
			return name
		case "nullable_timestamp":
			return "timestamp or null"
		case "plan_ref":
			return "plan `{id, name}`"
		case "schema_document":
			return "this OpenAPI document"
		case "deprovision_request":
			return "`{\"reason\": \"…\"}` (at most 500 bytes, for the audit trail)"
		}
		return "[" + name + "](#" + name + ")"
	}
	if one := opSlice(s["oneOf"]); len(one) > 0 {
		var parts []string
		for _, x := range one {
			parts = append(parts, typeName(spec, opMap(x)))
		}
		return strings.Join(parts, " or ")
	}
	switch t := s["type"].(type) {
	case []any:
		var parts []string
		for _, x := range t {
			parts = append(parts, opString(x))
		}
		return strings.Join(parts, " or ")
	case string:
		switch t {
		case "array":
			return "array of " + typeName(spec, opMap(s["items"]))
		case "object":
			if ap, ok := s["additionalProperties"].(map[string]any); ok {
				return "object of " + typeName(spec, ap) + "s"
			}
			if props := opMap(s["properties"]); len(props) > 0 {
				return "object `{" + strings.Join(opKeys(props), ", ") + "}`"
			}
		}
		return t
	}
	return "value"
}

// errorLinks lists the documented errors with a status.
func errorLinks(spec *opSpec, status int) string {
	var ids []string
	for _, e := range opSlice(spec.doc["x-errors"]) {
		m := opMap(e)
		if int(m["status"].(float64)) == status {
			id := opString(m["id"])
			ids = append(ids, "[`"+id+"`](#error-"+id+")")
		}
	}
	return http.StatusText(status) + ": " + strings.Join(ids, ", ")
}

// anchor is GitHub's heading anchor.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

func cell(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestOperatorDocExamples runs the documented curl commands, in the order
// of the docs, against a live server whose example add-on goes through
// every action: each must succeed, and its request and answer must match
// the schema.
func TestOperatorDocExamples(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		kilntest.SkipMissing(t, "curl is not installed, so the operator API docs' curl examples did not run (sudo apt-get install -y curl)")
	}
	e := newOpEnv(t, opConfig{worker: true})
	srv := httptest.NewServer(e.e)
	t.Cleanup(srv.Close)

	// The example add-on failed once (Heroku refused its config), so the
	// retry example has something to retry.
	grant := e.sim.NewAddon(exampleID)
	e.sim.Inject(herokusim.Fault{Kind: herokusim.KindConfig, AddonID: exampleID, Times: 1, Status: http.StatusUnprocessableEntity})
	if _, _, err := e.svc.Provision(context.Background(), addon.ProvisionRequest{
		ID: exampleID, Name: exampleName, Plan: "test", Grant: &grant, CallbackURL: "https://api.heroku.com/addons/" + exampleID,
	}); err != nil {
		t.Fatal(err)
	}
	e.waitState(t, exampleID, addon.StateFailed)

	dir := t.TempDir()
	for _, o := range e.spec.ops {
		name := opString(o.op["operationId"])
		t.Run(name, func(t *testing.T) {
			ex := opMap(o.op["x-example"])
			// The example request, as Go sees it, must match the schema.
			target := opServer + opString(ex["path"])
			if q := opString(ex["query"]); q != "" {
				target += "?" + q
			}
			req := httptest.NewRequest(o.method, target, nil)
			req.Header.Set("Accept", opString(e.spec.doc["x-media-type"]))
			req.Header.Set("Authorization", "Bearer x")
			for k, v := range opMap(ex["headers"]) {
				req.Header.Set(k, opString(v))
			}
			body := ""
			if b, ok := ex["body"]; ok {
				body = mustJSON(b)
			}
			_, values := e.spec.find(o.method, req.URL.Path)
			e.spec.checkRequest(t, o, values, req, body)

			out, hdr := filepath.Join(dir, name+".body"), filepath.Join(dir, name+".headers")
			cmd := exec.Command("bash", "-c", curlCommand(e.spec, o)+` -o "$OUT" -D "$HDR"`)
			cmd.Env = append(os.Environ(), "KILN_URL="+srv.URL, "ADMIN_PASSWORD="+opPassword, "OUT="+out, "HDR="+hdr)
			if msg, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s\n%v: %s", curlCommand(e.spec, o), err, msg)
			}
			status, header := readHeaders(t, hdr)
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			e.spec.checkResponse(t, o, o.method, target, status, header, got)
			if status/100 != 2 {
				t.Errorf("%s\n→ %d %s", curlCommand(e.spec, o), status, got)
			}
		})
		if name == "retryResource" {
			e.waitState(t, exampleID, addon.StateProvisioned) // so the rotation example can rotate
		}
	}
}

// readHeaders parses curl's -D dump.
func readHeaders(tb testing.TB, path string) (int, http.Header) {
	tb.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\r\n")
	f := strings.Fields(lines[0])
	if len(f) < 2 {
		tb.Fatalf("status line %q", lines[0])
	}
	status, err := strconv.Atoi(f[1])
	if err != nil {
		tb.Fatalf("status line %q", lines[0])
	}
	h := http.Header{}
	for _, l := range lines[1:] {
		if k, v, ok := strings.Cut(l, ":"); ok {
			h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
	}
	return status, h
}
