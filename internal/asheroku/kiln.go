// Package asheroku acts as Heroku against any Kiln, local or deployed: it
// sends the Partner API calls Heroku sends (provision, plan change,
// deprovision) with the manifest's credentials, signs single sign-on forms
// the way Heroku's dashboard does, drives the Heroku simulator
// (internal/herokusim) over its /_sim control surface so the Kiln under
// test has an OAuth grant to exchange and a Platform API to push config to,
// and writes and checks add-on manifests. The kiln-heroku command and the
// conformance checks are built on it, so a partner's CI and Kiln's own
// tests exercise exactly the same client.
package asheroku

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// MediaType is the Accept header Heroku sends with every Partner API call.
// A provider that refuses it (406) breaks Heroku, so the client always sends
// it and the conformance checks notice a refusal.
const MediaType = "application/vnd.heroku-addons+json; version=3"

// ResourcesPath is where the Partner API lives under Kiln's root URL; the
// manifest's base_url is the root URL plus this path.
const ResourcesPath = "/heroku/resources"

// SSOPath is where Heroku's dashboard posts the single sign-on form; the
// manifest's sso_url is the root URL plus this path.
const SSOPath = "/sso/login"

// maxAnswer caps how much of an answer is read, so a misbehaving server
// cannot make the client buffer without end.
const maxAnswer = 1 << 20

// Kiln calls one Kiln deployment as Heroku does. The zero HTTP client means
// a client with a 30 s timeout (Heroku gives up after 25 s).
type Kiln struct {
	// URL is Kiln's root URL, such as http://localhost:5000.
	URL string
	// ID and Password are the manifest's id and api.password: the Basic
	// credentials Heroku sends. An empty ID sends no Authorization header.
	ID       string
	Password string
	// HTTP is the client used for every call; nil means a default one.
	HTTP *http.Client
}

// NewKiln returns a client for the Kiln at rootURL with the manifest's
// credentials.
func NewKiln(rootURL, id, password string) *Kiln {
	return &Kiln{URL: strings.TrimRight(rootURL, "/"), ID: id, Password: password}
}

// WithCredentials returns a copy of k that authenticates as id:password, so
// checks can send wrong credentials without disturbing the real client. An
// empty id sends no Authorization header at all.
func (k *Kiln) WithCredentials(id, password string) *Kiln {
	c := *k
	c.ID, c.Password = id, password
	return &c
}

// Answer is one HTTP answer, kept whole so callers can judge status, headers
// and body the way Heroku would.
type Answer struct {
	Method string
	URL    string
	Status int
	Header http.Header
	Body   []byte
}

// IsJSON reports whether the answer declares a JSON media type (Heroku's
// vendor types included) and its body parses as JSON.
func (a *Answer) IsJSON() bool {
	mt, _, err := mime.ParseMediaType(a.Header.Get("Content-Type"))
	if err != nil || !(mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		return false
	}
	return json.Valid(a.Body)
}

// Object decodes the body as a JSON object.
func (a *Answer) Object() (map[string]any, error) {
	var m map[string]any
	if err := json.Unmarshal(a.Body, &m); err != nil {
		return nil, fmt.Errorf("%s %s answered %d with a body that is not a JSON object: %w", a.Method, a.URL, a.Status, err)
	}
	if m == nil {
		return nil, fmt.Errorf("%s %s answered %d with JSON null, not an object", a.Method, a.URL, a.Status)
	}
	return m, nil
}

// Message returns the body's "message" field, which Heroku shows to the
// customer for refusals, or "" when there is none.
func (a *Answer) Message() string {
	m, err := a.Object()
	if err != nil {
		return ""
	}
	s, _ := m["message"].(string)
	return s
}

// String describes the answer in one line for tables and logs: the status
// and the start of the body.
func (a *Answer) String() string {
	if len(a.Body) > 0 && !a.IsJSON() {
		// An HTML page (an SSO refusal, a proxy's error) says nothing in
		// one line; its type and size do.
		ct := a.Header.Get("Content-Type")
		if mt, _, err := mime.ParseMediaType(ct); err == nil {
			ct = mt
		}
		if ct == "" {
			ct = "no Content-Type"
		}
		return fmt.Sprintf("%d %s (%d bytes)", a.Status, ct, len(a.Body))
	}
	body := strings.Join(strings.Fields(string(a.Body)), " ")
	if len(body) > 120 {
		body = body[:117] + "..."
	}
	if body == "" {
		return fmt.Sprintf("%d (empty body)", a.Status)
	}
	return fmt.Sprintf("%d %s", a.Status, body)
}

// ProvisionRequest is the body of Heroku's provision call.
type ProvisionRequest struct {
	UUID          string            `json:"uuid"`
	Name          string            `json:"name"`
	Plan          string            `json:"plan"`
	Region        string            `json:"region"`
	CallbackURL   string            `json:"callback_url"`
	Options       map[string]string `json:"options"`
	OAuthGrant    *OAuthGrant       `json:"oauth_grant"`
	LogInputURL   string            `json:"log_input_url,omitempty"`
	LogDrainToken string            `json:"log_drain_token,omitempty"`
}

// OAuthGrant is the grant Heroku sends with a provision call: the provider
// exchanges the code at id.heroku.com within five minutes.
type OAuthGrant struct {
	Code      string `json:"code"`
	ExpiresAt string `json:"expires_at"` // Heroku's format: 2006-01-02T15:04:05-0700
	Type      string `json:"type"`
}

// NewProvisionRequest fills a provision body the way Heroku does for an
// add-on with this uuid and grant, with a name, region and callback URL
// that look like Heroku's.
func NewProvisionRequest(id, plan string, grant *OAuthGrant, options map[string]string) ProvisionRequest {
	short := strings.ReplaceAll(id, "-", "")
	if len(short) > 8 {
		short = short[:8]
	}
	if options == nil {
		options = map[string]string{}
	}
	return ProvisionRequest{
		UUID:        id,
		Name:        "kiln-heroku-" + short,
		Plan:        plan,
		Region:      "amazon-web-services::us-east-1",
		CallbackURL: "https://api.heroku.com/addons/" + id,
		Options:     options,
		OAuthGrant:  grant,
	}
}

// Provision sends POST /heroku/resources.
func (k *Kiln) Provision(ctx context.Context, r ProvisionRequest) (*Answer, error) {
	return k.Call(ctx, http.MethodPost, ResourcesPath, r)
}

// ChangePlan sends PUT /heroku/resources/:uuid with {"plan": plan}.
func (k *Kiln) ChangePlan(ctx context.Context, id, plan string) (*Answer, error) {
	return k.Call(ctx, http.MethodPut, ResourcesPath+"/"+url.PathEscape(id), map[string]string{"plan": plan})
}

// Deprovision sends DELETE /heroku/resources/:uuid, without a body as
// Heroku does.
func (k *Kiln) Deprovision(ctx context.Context, id string) (*Answer, error) {
	return k.Call(ctx, http.MethodDelete, ResourcesPath+"/"+url.PathEscape(id), nil)
}

// Call sends one Partner API call with Heroku's headers; body, when not nil,
// is sent as JSON. A transport failure is an error; any HTTP status is an
// Answer.
func (k *Kiln) Call(ctx context.Context, method, path string, body any) (*Answer, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, k.URL+path, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", MediaType)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if k.ID != "" {
		req.SetBasicAuth(k.ID, k.Password)
	}
	return do(k.client(), req)
}

func (k *Kiln) client() *http.Client {
	if k.HTTP != nil {
		return k.HTTP
	}
	return defaultClient
}

var defaultClient = &http.Client{Timeout: 30 * time.Second}

// do sends req and reads the whole answer.
func do(c *http.Client, req *http.Request) (*Answer, error) {
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", req.Method, req.URL.Redacted(), err)
	}
	return &Answer{Method: req.Method, URL: req.URL.Redacted(), Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}
