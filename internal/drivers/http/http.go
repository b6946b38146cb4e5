// Package http is the "http" resource driver: Kiln creates, re-plans,
// rotates and destroys customers' resources by calling the partner's own
// service (RESOURCE_HTTP_URL), in any language, over a small signed JSON
// protocol (docs/http-driver.md):
//
//	POST   /resources                                  create; 200/201 {"config"} or 202 {"message"}
//	GET    /resources/{id}                             poll a 202: 200 {"config"} when ready, 202 meanwhile
//	PUT    /resources/{id}                             change plan; 200 {"config"?} or 422 {"message"}
//	DELETE /resources/{id}                             destroy; 2xx, or 404/410 when already gone
//	POST   /resources/{id}/actions/rotate-credentials  200 {"config"}, or 404/501: does not rotate
//
// Every request carries Kiln-Signature (see Sign) and an Idempotency-Key
// that is the same for every retry of one step.
//
// The driver does not retry by itself: it maps each answer onto the
// domain's error codes the way internal/heroku does, and the worker's job
// retries (with backoff, honouring RetryAfter, bounded by the provision
// deadline) do the rest:
//
//	network error, timeout, 408, 409, 425, 5xx   EUNAVAILABLE (RetryAfter from Retry-After)
//	429                                          ERATELIMIT   (RetryAfter, default 5 s)
//	202 still pending after PollBudget           EUNAVAILABLE (the next attempt asks again)
//	404 on PUT                                   EINVALID: the service does not know the resource
//	404/501 on rotate                            EUNSUPPORTED wrapping addon.ErrCannotRotate
//	other 4xx                                    EINVALID with the service's message
//
// The package is named http after what it depends on, like the other
// drivers; importers name it httpdriver.
package http

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/kiln-dev/kiln/internal/addon"
)

// Defaults for Options' zero values.
const (
	// DefaultTimeout bounds one request (RESOURCE_HTTP_TIMEOUT).
	DefaultTimeout = 10 * time.Second
	// DefaultPollBudget is how long one attempt polls a 202 before handing
	// the wait to the worker's retries, which free the worker slot and back
	// off up to minutes, within the provision deadline.
	DefaultPollBudget = time.Minute
	// rateLimitWait is the back-off for a 429 without Retry-After.
	rateLimitWait = 5 * time.Second
	// maxRetryAfter caps the service's hint, so a bogus header cannot park
	// a job for days.
	maxRetryAfter = time.Hour
	// firstPoll and maxPoll shape the poll backoff after a 202.
	firstPoll = 500 * time.Millisecond
	maxPoll   = 15 * time.Second
	// maxBody caps what is read of an answer.
	maxBody = 1 << 20
	// maxMessage caps the service's message shown to customers.
	maxMessage = 500
	userAgent  = "kiln-http-driver/1"
)

// Options configure the driver; URL and Secret are required.
type Options struct {
	// URL is RESOURCE_HTTP_URL, the base URL of the partner's service; the
	// protocol's paths are appended to it.
	URL string
	// Secret is RESOURCE_HTTP_SECRET, the HMAC key of Kiln-Signature.
	Secret string
	// Timeout bounds each request (RESOURCE_HTTP_TIMEOUT); zero means
	// DefaultTimeout.
	Timeout time.Duration
	// PollBudget bounds the polling of a 202 within one attempt; zero
	// means DefaultPollBudget.
	PollBudget time.Duration
	// Catalog is the plans sold (LoadCatalog); nil means the built-in one.
	Catalog addon.Catalog
	// HTTPClient sends the requests; nil means a client of its own.
	HTTPClient *http.Client
	// Log gets one debug line per request (never a body); nil discards.
	Log *slog.Logger
	// Now is the clock that signs; nil means time.Now.
	Now func() time.Time
}

// Driver calls the partner's service. It is safe for concurrent use.
type Driver struct {
	base    *url.URL
	secret  string
	timeout time.Duration
	poll    time.Duration
	catalog addon.Catalog
	hc      *http.Client
	log     *slog.Logger
	now     func() time.Time
}

var _ addon.Driver = (*Driver)(nil)

// New builds the driver, refusing an unusable URL or an empty secret.
func New(o Options) (*Driver, error) {
	u, err := url.Parse(strings.TrimRight(o.URL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("RESOURCE_HTTP_URL %q is not an absolute http(s) URL", o.URL)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("RESOURCE_HTTP_URL must have no query, fragment or credentials (requests are signed with RESOURCE_HTTP_SECRET)")
	}
	if o.Secret == "" {
		return nil, errors.New("RESOURCE_HTTP_SECRET is required by the http driver")
	}
	d := &Driver{base: u, secret: o.Secret, timeout: o.Timeout, poll: o.PollBudget, catalog: o.Catalog, hc: o.HTTPClient, log: o.Log, now: o.Now}
	if d.timeout <= 0 {
		d.timeout = DefaultTimeout
	}
	if d.poll <= 0 {
		d.poll = DefaultPollBudget
	}
	if d.catalog == nil {
		if d.catalog, err = LoadCatalog(""); err != nil {
			return nil, err
		}
	}
	if d.hc == nil {
		d.hc = &http.Client{}
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.now == nil {
		d.now = time.Now
	}
	return d, nil
}

// Name is the RESOURCE_DRIVER value that selects this driver; the
// configuration and the wiring name the driver by it, so it is spelled once.
const Name = "http"

// Name is the RESOURCE_DRIVER value that selects this driver.
func (d *Driver) Name() string { return Name }

// Catalog is the plans of RESOURCE_PLANS_FILE (or the built-in ones).
func (d *Driver) Catalog() addon.Catalog { return d.catalog.Clone() }

// Abilities: the protocol has a rotation action (a service that does not
// rotate answers it 404 or 501), but no roll with two live sets of
// credentials and nothing for a dashboard panel.
func (d *Driver) Abilities() addon.Abilities { return addon.Abilities{Rotate: true} }

// createBody is what POST /resources sends. The provision call does not
// say which app the add-on is for, so app.name is the add-on's name on
// Heroku; services key everything on id.
type createBody struct {
	ID      string            `json:"id"`
	Name    string            `json:"name"`
	Plan    string            `json:"plan"`
	Region  string            `json:"region"`
	Options map[string]string `json:"options"`
	App     struct {
		Name string `json:"name"`
	} `json:"app"`
}

// answer is the service's JSON answer.
type answer struct {
	Config  map[string]string `json:"config"`
	Message string            `json:"message"`
}

// Create asks the service for the resource. A 202 is polled with backoff
// for up to PollBudget; a resource still not ready then is a transient
// error, so the worker retries the step later (the service, idempotent by
// id, answers 202 again or the finished config) until the provision
// deadline.
func (d *Driver) Create(ctx context.Context, r addon.Resource) (addon.Vars, error) {
	if !addon.ValidID(r.ID) {
		return nil, addon.Errorf(addon.EINVALID, "The uuid %q is not a valid UUID.", r.ID)
	}
	b := createBody{ID: r.ID, Name: r.Name, Plan: r.Plan.Slug, Region: r.Region, Options: r.Options}
	if b.Options == nil {
		b.Options = map[string]string{}
	}
	b.App.Name = r.Name
	body, err := json.Marshal(b)
	if err != nil {
		return nil, addon.Wrap(addon.EINTERNAL, err, "Could not encode the create request.")
	}
	key := "create-" + r.ID
	res, err := d.do(ctx, http.MethodPost, "/resources", key, body)
	if err != nil {
		return nil, err
	}
	switch {
	case res.status == http.StatusAccepted:
		return d.poll202(ctx, r.ID, key, res)
	case res.status/100 == 2:
		return res.vars("create", true)
	}
	return nil, res.refusal("create")
}

// poll202 polls GET /resources/{id} until it answers 200 with config, the
// service refuses, or the attempt's budget ends.
func (d *Driver) poll202(ctx context.Context, id, key string, last *result) (addon.Vars, error) {
	pctx, cancel := context.WithTimeout(ctx, d.poll)
	defer cancel()
	wait := firstPoll
	var lastErr error
	for {
		if ra := last.retryAfter(d.now()); ra > wait {
			wait = min(ra, maxPoll)
		}
		t := time.NewTimer(wait)
		select {
		case <-pctx.Done():
			t.Stop()
			msg := "The resource service is still creating the resource; Kiln keeps asking."
			if last.message != "" {
				msg = "The resource service is still creating the resource: " + last.message
			}
			e := addon.Wrap(addon.EUNAVAILABLE, lastErr, "%s", msg)
			e.RetryAfter = max(wait, last.retryAfter(d.now()))
			return nil, e
		case <-t.C:
		}
		wait = min(wait*2, maxPoll)
		res, err := d.do(pctx, http.MethodGet, "/resources/"+url.PathEscape(id), key, nil)
		switch {
		case err != nil && pctx.Err() != nil && ctx.Err() == nil:
			continue // the budget ended inside the request; answered above
		case err != nil:
			if !addon.Transient(err) {
				return nil, err
			}
			lastErr = err
			continue
		case res.status == http.StatusAccepted:
			last = res
		case res.status == http.StatusOK:
			return res.vars("create", true)
		case res.status == http.StatusNotFound || res.status == http.StatusGone:
			// It answered 202 but lost the resource: the next attempt
			// creates it again.
			return nil, addon.Errorf(addon.EUNAVAILABLE, "The resource service answered 202 to the create but %d to the poll; Kiln will create it again.", res.status)
		default:
			err := res.refusal("create")
			if !addon.Transient(err) {
				return nil, err
			}
			last, lastErr = res, err
		}
	}
}

// ChangePlan asks the service to move the resource to another plan. A 422
// (or any other refusal) reaches Heroku as a 422 with the service's
// message; config, when the service answers it, replaces the vars.
func (d *Driver) ChangePlan(ctx context.Context, r addon.Resource, to addon.Plan) (addon.Vars, error) {
	if !addon.ValidID(r.ID) {
		return nil, addon.Errorf(addon.EINVALID, "The uuid %q is not a valid UUID.", r.ID)
	}
	body, _ := json.Marshal(map[string]string{"plan": to.Slug})
	key := "plan-" + r.ID + "-" + r.Plan.Slug + "-" + to.Slug + "-" + digest(r.Vars)
	res, err := d.do(ctx, http.MethodPut, "/resources/"+url.PathEscape(r.ID), key, body)
	if err != nil {
		return nil, err
	}
	switch {
	case res.status/100 == 2:
		if len(res.body.Config) == 0 {
			return maps.Clone(r.Vars), nil
		}
		return res.vars("plan change", true)
	case res.status == http.StatusNotFound:
		return nil, addon.Errorf(addon.EINVALID, "The resource service does not know this add-on's resource, so its plan cannot change.")
	}
	return nil, res.refusal("plan change")
}

// Destroy asks the service to delete the resource; a 404 or 410 means it is
// already gone, which is success.
func (d *Driver) Destroy(ctx context.Context, r addon.Resource) error {
	if !addon.ValidID(r.ID) {
		return nil // no such resource can exist
	}
	res, err := d.do(ctx, http.MethodDelete, "/resources/"+url.PathEscape(r.ID), "delete-"+r.ID, nil)
	if err != nil {
		return err
	}
	if res.status/100 == 2 || res.status == http.StatusNotFound || res.status == http.StatusGone {
		return nil
	}
	return res.refusal("delete")
}

// RotateCredentials asks the service for new credentials. A 404 or 501
// means the service does not rotate: addon.ErrCannotRotate.
func (d *Driver) RotateCredentials(ctx context.Context, r addon.Resource) (addon.Vars, error) {
	if !addon.ValidID(r.ID) {
		return nil, addon.Errorf(addon.EINVALID, "The uuid %q is not a valid UUID.", r.ID)
	}
	key := "rotate-" + r.ID + "-" + digest(r.Vars)
	res, err := d.do(ctx, http.MethodPost, "/resources/"+url.PathEscape(r.ID)+"/actions/rotate-credentials", key, []byte("{}"))
	if err != nil {
		return nil, err
	}
	switch {
	case res.status/100 == 2:
		return res.vars("rotation", true)
	case res.status == http.StatusNotFound || res.status == http.StatusNotImplemented:
		return nil, addon.CannotRotate("The resource service does not rotate credentials (it answered %d).", res.status)
	}
	return nil, res.refusal("rotation")
}

// Roll is not in the protocol: a rotation replaces the credentials at once.
func (d *Driver) Roll(context.Context, addon.Resource) (addon.Vars, error) {
	return nil, addon.Unsupported(d.Name(), "keep old credentials working through a rotation")
}

// Revoke is not in the protocol either (see Roll).
func (d *Driver) Revoke(context.Context, addon.Resource, addon.Vars) error {
	return addon.Unsupported(d.Name(), "keep old credentials working through a rotation")
}

// Panel is not in the protocol: the service has no way to describe a
// resource to the customer's dashboard.
func (d *Driver) Panel(context.Context, addon.Resource) ([]addon.PanelField, error) {
	return nil, addon.Unsupported(d.Name(), "describe its resources on the dashboard")
}

// digest names a set of vars in an idempotency key without revealing them:
// a retry of a rotation or plan change sees the same vars (the step is not
// recorded yet), the next one sees the new ones.
func digest(v addon.Vars) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(v)) {
		fmt.Fprintf(h, "%s=%s\n", k, v[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// result is one answer of the service.
type result struct {
	op     string
	status int
	header http.Header
	body   answer
	// message is the service's message, cleaned for showing to customers.
	message string
	sent    time.Time
}

// do sends one signed request with its own timeout and reads the answer.
// A request that gets no answer is EUNAVAILABLE.
func (d *Driver) do(ctx context.Context, method, path, key string, body []byte) (*result, error) {
	// The path signed is the path sent: the base URL's own path (if any)
	// followed by the protocol's.
	target := d.base.EscapedPath() + path
	op := method + " " + target
	rctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(rctx, method, d.base.Scheme+"://"+d.base.Host+target, rd)
	if err != nil {
		return nil, addon.Wrap(addon.EINTERNAL, err, "RESOURCE_HTTP_URL is not valid.")
	}
	sent := d.now()
	req.Header.Set(SignatureHeader, Sign(d.secret, sent, method, target, body))
	req.Header.Set(IdempotencyHeader, key)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if rid := addon.RequestID(ctx); rid != "" {
		req.Header.Set("Request-Id", rid)
	}
	start := time.Now()
	resp, err := d.hc.Do(req)
	if err != nil {
		d.log.DebugContext(ctx, "resource service request failed", "op", op, "duration", time.Since(start), "err", err)
		msg := "The resource service could not be reached."
		if rctx.Err() != nil && ctx.Err() == nil {
			msg = fmt.Sprintf("The resource service did not answer within %s.", d.timeout)
		}
		return nil, addon.Wrap(addon.EUNAVAILABLE, fmt.Errorf("http driver: %s: %w", op, err), "%s", msg)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, addon.Wrap(addon.EUNAVAILABLE, fmt.Errorf("http driver: %s: read answer: %w", op, err), "The resource service's answer was cut off.")
	}
	d.log.DebugContext(ctx, "resource service request", "op", op, "status", resp.StatusCode, "duration", time.Since(start))
	res := &result{op: op, status: resp.StatusCode, header: resp.Header, sent: sent}
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &res.body); err != nil && resp.StatusCode/100 == 2 {
			return nil, addon.Wrap(addon.EINTERNAL, fmt.Errorf("http driver: %s: %d answer is not JSON: %w", op, resp.StatusCode, err),
				"The resource service answered %d with a body that is not the protocol's JSON.", resp.StatusCode)
		}
	}
	res.message = clean(res.body.Message)
	return res, nil
}

// vars reads the config of a 2xx answer. A missing or invalid config is a
// bug in the service: transient (EINTERNAL), so it is retried and an
// operator sees it in the log, rather than failing the customer's add-on.
func (r *result) vars(what string, needURL bool) (addon.Vars, error) {
	c := r.body.Config
	if len(c) == 0 {
		return nil, addon.Errorf(addon.EINTERNAL, "The resource service answered the %s with %d but no config.", what, r.status)
	}
	for k := range c {
		if !validVarSuffix(k) {
			return nil, addon.Errorf(addon.EINTERNAL, "The resource service answered the %s with config var %q: names are upper-case letters, digits and _, without the prefix.", what, k)
		}
	}
	if _, ok := c["URL"]; needURL && !ok {
		return nil, addon.Errorf(addon.EINTERNAL, "The resource service answered the %s without a URL config var.", what)
	}
	return addon.Vars(maps.Clone(c)), nil
}

func validVarSuffix(k string) bool {
	if k == "" {
		return false
	}
	for _, c := range k {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// refusal maps a non-success answer onto the domain's codes: 429 and 5xx
// (and 408, 409, 425: try again) are transient, honouring Retry-After;
// any other 4xx is EINVALID with the service's message, which Heroku shows
// to the customer when the call is still open.
func (r *result) refusal(what string) error {
	cause := fmt.Errorf("http driver: %s: %d %s", r.op, r.status, r.message)
	wait := r.retryAfter(r.sent)
	switch {
	case r.status == http.StatusTooManyRequests:
		if wait <= 0 {
			wait = rateLimitWait
		}
		e := addon.Wrap(addon.ERATELIMIT, cause, "The resource service is rate limiting Kiln.")
		e.RetryAfter = wait
		return e
	case r.status >= 500, r.status == http.StatusRequestTimeout, r.status == http.StatusConflict, r.status == http.StatusTooEarly:
		e := addon.Wrap(addon.EUNAVAILABLE, cause, "The resource service is unavailable (status %d).", r.status)
		e.RetryAfter = wait
		return e
	case r.status >= 400:
		msg := r.message
		if msg == "" {
			msg = fmt.Sprintf("The resource service refused the %s (%d %s).", what, r.status, http.StatusText(r.status))
		}
		return addon.Wrap(addon.EINVALID, cause, "%s", msg)
	}
	return addon.Wrap(addon.EINTERNAL, cause, "The resource service answered the %s with an unexpected status %d.", what, r.status)
}

// retryAfter reads Retry-After (seconds or an HTTP date), capped.
func (r *result) retryAfter(now time.Time) time.Duration {
	if r == nil {
		return 0
	}
	v := strings.TrimSpace(r.header.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return min(time.Duration(min(n, int64(maxRetryAfter/time.Second)))*time.Second, maxRetryAfter)
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), maxRetryAfter)
	}
	return 0
}

// clean makes the service's message safe to show through Heroku: one
// line, printable, bounded.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return ' '
		}
		if !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxMessage {
		s = strings.ToValidUTF8(s[:maxMessage], "") + "…"
	}
	return s
}
