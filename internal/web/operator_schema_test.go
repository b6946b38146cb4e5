package web_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/kiln-dev/kiln/internal/web"
)

// This file holds the operator API to operator_schema.json: every request
// the operator tests send and every answer they get is checked against the
// operation the schema describes (status listed, headers declared as
// required present and valid, body valid), and the registered routes must
// be exactly the schema's operations. So the schema cannot drift from the
// code without a test failing.
//
// JSON Schema validation uses github.com/santhosh-tekuri/jsonschema/v6: it
// implements draft 2020-12 (the dialect of OpenAPI 3.1's schemas) fully,
// passes the official JSON-Schema-Test-Suite, and depends on nothing but
// golang.org/x/text. kin-openapi was the alternative; it targets OpenAPI 3.0
// and brings a much larger dependency tree.

const (
	opSchemaFile = "operator_schema.json"
	opSchemaURL  = "file:///kiln/operator_schema.json"
	opServer     = "/admin/api"
)

// opSpec is the loaded schema with compiled validators.
type opSpec struct {
	doc      map[string]any // decoded with encoding/json, for navigation
	compiler *jsonschema.Compiler
	mu       sync.Mutex
	compiled map[string]*jsonschema.Schema
	ops      []*opOperation
	errors   map[string]float64 // x-errors: id → status

	seenMu sync.Mutex
	seen   map[string]bool // "operationId status" checked
}

// opOperation is one method on one path of the schema.
type opOperation struct {
	method, template string // template relative to the server, e.g. /resources/{resource_id_or_name}
	pattern          *regexp.Regexp
	pointer          string // JSON pointer of the operation object
	op               map[string]any
}

var (
	opSpecOnce sync.Once
	opSpecVal  *opSpec
	opSpecErr  error
)

// loadOpSpec loads and compiles operator_schema.json once per test binary.
func loadOpSpec(tb testing.TB) *opSpec {
	tb.Helper()
	opSpecOnce.Do(func() { opSpecVal, opSpecErr = newOpSpec() })
	if opSpecErr != nil {
		tb.Fatalf("load %s: %v", opSchemaFile, opSpecErr)
	}
	return opSpecVal
}

func newOpSpec() (*opSpec, error) {
	raw, err := os.ReadFile(opSchemaFile)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(opSchemaURL, inst); err != nil {
		return nil, err
	}
	s := &opSpec{doc: doc, compiler: c, compiled: map[string]*jsonschema.Schema{}, errors: map[string]float64{}, seen: map[string]bool{}}
	for _, e := range opSlice(doc["x-errors"]) {
		m := opMap(e)
		s.errors[opString(m["id"])] = m["status"].(float64)
	}
	paths := opMap(doc["paths"])
	for _, tmpl := range opKeys(paths) {
		item := opMap(paths[tmpl])
		for _, method := range opKeys(item) {
			// QuoteMeta escaped the braces of the placeholders.
			re := regexp.MustCompile(`\\\{[^}]+\\\}`).ReplaceAllString(regexp.QuoteMeta(tmpl), `([^/]+)`)
			s.ops = append(s.ops, &opOperation{
				method:   strings.ToUpper(method),
				template: tmpl,
				pattern:  regexp.MustCompile("^" + re + "$"),
				pointer:  "/paths/" + pointerToken(tmpl) + "/" + method,
				op:       opMap(item[method]),
			})
		}
	}
	// The document's order (the JSON object keeps it, the decoded map does
	// not) is the docs' order: find each path in the raw text.
	sort.SliceStable(s.ops, func(i, j int) bool {
		return bytes.Index(raw, []byte(`"`+s.ops[i].template+`": {`)) < bytes.Index(raw, []byte(`"`+s.ops[j].template+`": {`))
	})
	return s, nil
}

// pointerToken escapes a JSON pointer token (RFC 6901).
func pointerToken(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

// schema compiles (once) the schema at a JSON pointer into the document.
func (s *opSpec) schema(tb testing.TB, pointer string) *jsonschema.Schema {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if sch, ok := s.compiled[pointer]; ok {
		return sch
	}
	// The fragment is a URI fragment: percent-encode what a pointer into
	// path templates contains ({ and }).
	frag := strings.NewReplacer("{", "%7B", "}", "%7D").Replace(pointer)
	sch, err := s.compiler.Compile(opSchemaURL + "#" + frag)
	if err != nil {
		tb.Fatalf("compile the schema at %s: %v", pointer, err)
	}
	s.compiled[pointer] = sch
	return sch
}

// resolve follows a $ref (local, "#/...") and returns the object and its
// pointer.
func (s *opSpec) resolve(v map[string]any, pointer string) (map[string]any, string) {
	for {
		ref, ok := v["$ref"].(string)
		if !ok {
			return v, pointer
		}
		pointer = strings.TrimPrefix(ref, "#")
		v = s.at(pointer)
	}
}

// at returns the object at a JSON pointer.
func (s *opSpec) at(pointer string) map[string]any {
	var cur any = s.doc
	for _, tok := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		cur = opMap(cur)[tok]
	}
	return opMap(cur)
}

// find returns the operation for a request path (with the server prefix)
// and method, and the values of its path parameters; nil when the schema
// has no such operation.
func (s *opSpec) find(method, path string) (*opOperation, []string) {
	rel, ok := strings.CutPrefix(path, opServer)
	if !ok {
		return nil, nil
	}
	for _, o := range s.ops {
		if m := o.pattern.FindStringSubmatch(rel); m != nil && o.method == method {
			return o, m[1:]
		}
	}
	return nil, nil
}

// validate checks v (decoded with jsonschema.UnmarshalJSON) against the
// schema at pointer.
func (s *opSpec) validate(tb testing.TB, what, pointer string, v any) {
	tb.Helper()
	if err := s.schema(tb, pointer).Validate(v); err != nil {
		tb.Errorf("%s does not match the schema at %s: %v", what, pointer, err)
	}
}

// parameters returns the operation's parameters, $refs resolved, each with
// the pointer of its schema.
func (s *opSpec) parameters(o *opOperation) []opParam {
	var out []opParam
	for i, p := range opSlice(o.op["parameters"]) {
		m, ptr := s.resolve(opMap(p), fmt.Sprintf("%s/parameters/%d", o.pointer, i))
		out = append(out, opParam{
			name:     opString(m["name"]),
			in:       opString(m["in"]),
			required: m["required"] == true,
			schema:   ptr + "/schema",
		})
	}
	return out
}

type opParam struct {
	name, in string
	required bool
	schema   string
}

// checkRequest holds a request the test meant to be valid to the schema:
// its path parameters, query parameters (only declared ones), header
// parameters, the versioned Accept header, credentials, and body.
func (s *opSpec) checkRequest(tb testing.TB, o *opOperation, pathValues []string, req *http.Request, body string) {
	tb.Helper()
	what := req.Method + " " + req.URL.String()
	params := s.parameters(o)
	pathParams := 0
	for _, p := range params {
		switch p.in {
		case "path":
			if pathParams >= len(pathValues) {
				tb.Errorf("%s: path parameter %s has no value", what, p.name)
				continue
			}
			v, _ := url.PathUnescape(pathValues[pathParams])
			pathParams++
			s.validate(tb, what+": path parameter "+p.name, p.schema, v)
		case "query":
			if vs, ok := req.URL.Query()[p.name]; ok {
				for _, v := range vs {
					s.validate(tb, what+": query parameter "+p.name, p.schema, v)
				}
			} else if p.required {
				tb.Errorf("%s: required query parameter %s missing", what, p.name)
			}
		case "header":
			if v := req.Header.Get(p.name); v != "" {
				s.validate(tb, what+": header "+p.name, p.schema, v)
			} else if p.required {
				tb.Errorf("%s: required header %s missing", what, p.name)
			}
		}
	}
	if pathParams != len(pathValues) {
		tb.Errorf("%s: %d path values, %d declared", what, len(pathValues), pathParams)
	}
	for k := range req.URL.Query() {
		if !slices.ContainsFunc(params, func(p opParam) bool { return p.in == "query" && p.name == k }) {
			tb.Errorf("%s: query parameter %q is not in the schema", what, k)
		}
	}
	if want := opString(s.doc["x-media-type"]); !acceptsMediaType(req.Header.Get("Accept"), want) {
		tb.Errorf("%s: Accept = %q does not ask for the schema's media type %q", what, req.Header.Get("Accept"), want)
	}
	if req.Header.Get("Authorization") == "" {
		tb.Errorf("%s: no credentials; the schema requires bearer or basic", what)
	}
	rb, hasBody := o.op["requestBody"]
	switch {
	case body == "":
		if hasBody && opMap(rb)["required"] == true {
			tb.Errorf("%s: the schema requires a body", what)
		}
	case !hasBody:
		tb.Errorf("%s: sends a body the schema does not describe", what)
	default:
		inst, err := jsonschema.UnmarshalJSON(strings.NewReader(body))
		if err != nil {
			tb.Errorf("%s: body is not JSON: %v", what, err)
			return
		}
		s.validate(tb, what+": request body", o.pointer+"/requestBody/content/application~1json/schema", inst)
	}
}

// checkResponse holds an answer to the schema: its status must be listed
// for the operation (or, with no operation, be a documented error), every
// header declared required must be there and valid, and the body must match
// the declared content (no body when none is declared).
func (s *opSpec) checkResponse(tb testing.TB, o *opOperation, method, path string, status int, h http.Header, body []byte) {
	tb.Helper()
	what := fmt.Sprintf("%s %s → %d", method, path, status)
	var resp map[string]any
	var ptr string
	if o == nil {
		// No operation (an unknown path or method): a documented error.
		resp, ptr = s.resolve(map[string]any{"$ref": "#/components/responses/Error"}, "")
	} else {
		r, ok := opMap(o.op["responses"])[strconv.Itoa(status)]
		if !ok {
			tb.Errorf("%s: status %d is not in the schema for %s %s", what, status, o.method, o.template)
			return
		}
		resp, ptr = s.resolve(opMap(r), o.pointer+"/responses/"+strconv.Itoa(status))
		s.seenMu.Lock()
		s.seen[opString(o.op["operationId"])+" "+strconv.Itoa(status)] = true
		s.seenMu.Unlock()
	}
	headers := opMap(resp["headers"])
	for _, name := range opKeys(headers) {
		hd, hptr := s.resolve(opMap(headers[name]), ptr+"/headers/"+pointerToken(name))
		v := h.Get(name)
		if v == "" {
			if hd["required"] == true {
				tb.Errorf("%s: required header %s missing", what, name)
			}
			continue
		}
		s.validate(tb, what+": header "+name, hptr+"/schema", v)
	}
	content, hasContent := resp["content"]
	if !hasContent {
		if len(body) != 0 {
			tb.Errorf("%s: a body (%q) where the schema declares none", what, body)
		}
		return
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		tb.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
	if _, ok := opMap(content)["application/json"]; !ok {
		tb.Fatalf("%s: the schema declares no application/json content", what)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		tb.Errorf("%s: body is not JSON: %v: %q", what, err, body)
		return
	}
	s.validate(tb, what+": body", ptr+"/content/application~1json/schema", inst)
	if status >= 400 {
		s.checkErrorBody(tb, what, status, body)
	}
}

// checkErrorBody holds an error answer to the errors list: its id is
// documented with this status and its url points at that id's section.
func (s *opSpec) checkErrorBody(tb testing.TB, what string, status int, body []byte) {
	tb.Helper()
	var e struct{ ID, URL string }
	if err := json.Unmarshal(body, &e); err != nil {
		tb.Errorf("%s: %v", what, err)
		return
	}
	documented, ok := s.errors[e.ID]
	switch {
	case !ok:
		tb.Errorf("%s: error id %q is not in the schema's x-errors", what, e.ID)
	case int(documented) != status:
		tb.Errorf("%s: error id %q is documented with status %v", what, e.ID, documented)
	}
	if want := web.OperatorDocsURL + "#error-" + string(e.ID); e.URL != want {
		tb.Errorf("%s: error url = %q, want %q", what, e.URL, want)
	}
}

// acceptsMediaType reports whether an Accept header lists the media type
// with its version parameter.
func acceptsMediaType(accept, want string) bool {
	wantType, wantParams, err := mime.ParseMediaType(want)
	if err != nil {
		return false
	}
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err == nil && mt == wantType && params["version"] == wantParams["version"] {
			return true
		}
	}
	return false
}

func opMap(v any) map[string]any { m, _ := v.(map[string]any); return m }
func opSlice(v any) []any        { s, _ := v.([]any); return s }
func opString(v any) string      { s, _ := v.(string); return s }
func opKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestOperatorSchemaMatchesRoutes: every route registered under /admin/api
// is an operation of the schema, and every operation is a route.
func TestOperatorSchemaMatchesRoutes(t *testing.T) {
	spec := loadOpSpec(t)
	e := web.New(web.Options{AdminPassword: "schema-test-admin-password-0123456789"})
	placeholder := regexp.MustCompile(`:[^/]+|\{[^}]+\}`)
	var routes, ops []string
	for _, r := range e.Routes() {
		if !strings.HasPrefix(r.Path, opServer+"/") || r.Method == echo.RouteNotFound {
			continue
		}
		routes = append(routes, r.Method+" "+placeholder.ReplaceAllString(strings.TrimPrefix(r.Path, opServer), "{}"))
	}
	for _, o := range spec.ops {
		ops = append(ops, o.method+" "+placeholder.ReplaceAllString(o.template, "{}"))
	}
	sort.Strings(routes)
	sort.Strings(ops)
	if len(routes) == 0 {
		t.Fatal("no routes under " + opServer)
	}
	if !slices.Equal(routes, ops) {
		t.Errorf("routes and schema differ:\nroutes: %v\nschema: %v", routes, ops)
	}
}

// TestOperatorSchemaDocument checks what the JSON Schema compiler does not:
// the OpenAPI structure the docs and the tests rely on.
func TestOperatorSchemaDocument(t *testing.T) {
	spec := loadOpSpec(t)
	if v := opString(spec.doc["openapi"]); !strings.HasPrefix(v, "3.1.") {
		t.Errorf("openapi = %q, want 3.1.x", v)
	}
	// Every component schema compiles: the compiler validates each against
	// the draft 2020-12 meta-schema.
	for _, name := range opKeys(opMap(opMap(spec.doc["components"])["schemas"])) {
		spec.schema(t, "/components/schemas/"+name)
	}
	errorStatuses := map[int]bool{}
	for id, st := range spec.errors {
		if !regexp.MustCompile(`^[a-z_]+$`).MatchString(id) {
			t.Errorf("error id %q is not snake_case", id)
		}
		errorStatuses[int(st)] = true
	}
	ids := map[string]bool{}
	for _, o := range spec.ops {
		name := o.method + " " + o.template
		id := opString(o.op["operationId"])
		if id == "" || ids[id] {
			t.Errorf("%s: operationId %q missing or repeated", name, id)
		}
		ids[id] = true
		if opString(o.op["summary"]) == "" || opString(o.op["description"]) == "" {
			t.Errorf("%s: no summary or description", name)
		}
		if st := opString(o.op["x-stability"]); !slices.Contains([]string{"prototype", "development", "production"}, st) {
			t.Errorf("%s: x-stability %q, want prototype, development or production", name, st)
		}
		ex := opMap(o.op["x-example"])
		if p := opString(ex["path"]); !o.pattern.MatchString(strings.SplitN(p, "?", 2)[0]) {
			t.Errorf("%s: x-example path %q does not match the operation", name, p)
		}
		if m := opString(ex["method"]); m != "" && m != o.method {
			t.Errorf("%s: x-example method %q", name, m)
		}
		var pathParams []string
		for _, p := range spec.parameters(o) {
			if p.in == "path" {
				pathParams = append(pathParams, p.name)
			}
			spec.schema(t, p.schema)
		}
		var inTemplate []string
		for _, m := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(o.template, -1) {
			inTemplate = append(inTemplate, m[1])
		}
		if !slices.Equal(pathParams, inTemplate) {
			t.Errorf("%s: path parameters %v, template has %v", name, pathParams, inTemplate)
		}
		responses := opMap(o.op["responses"])
		has2xx := false
		for _, code := range opKeys(responses) {
			status, err := strconv.Atoi(code)
			if err != nil {
				t.Errorf("%s: response %q is not a status", name, code)
				continue
			}
			has2xx = has2xx || status/100 == 2
			if status >= 400 && !errorStatuses[status] {
				t.Errorf("%s: status %d has no entry in x-errors", name, status)
			}
			resp, ptr := spec.resolve(opMap(responses[code]), o.pointer+"/responses/"+code)
			if opString(resp["description"]) == "" {
				t.Errorf("%s %d: no description", name, status)
			}
			for _, h := range opKeys(opMap(resp["headers"])) {
				_, hptr := spec.resolve(opMap(opMap(resp["headers"])[h]), ptr+"/headers/"+pointerToken(h))
				spec.schema(t, hptr+"/schema")
			}
			if opMap(resp["headers"])["Request-Id"] == nil || opMap(resp["headers"])["RateLimit-Remaining"] == nil {
				t.Errorf("%s %d: Request-Id and RateLimit-Remaining must be declared on every answer", name, status)
			}
			if _, ok := resp["content"]; ok {
				spec.schema(t, ptr+"/content/application~1json/schema")
			}
		}
		if !has2xx {
			t.Errorf("%s: no success response", name)
		}
	}
}
