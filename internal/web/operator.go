package web

import (
	"context"
	_ "embed"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/labstack/echo/v4"
)

// This file is the operator API under /admin/api: routes and handlers. The
// HTTP rules every answer follows (version, auth, rate limit, ETag, errors)
// are in operator_http.go, paging in operator_range.go, representations in
// operator_view.go. operator_schema.json describes all of it; the tests
// hold the code to it and docs/operator-api.md is generated from it.
//
//go:generate env KILN_UPDATE_DOCS=1 go test -count=1 -run ^TestOperatorDocs$ .

// operatorSchema is the OpenAPI 3.1 document of the operator API, served at
// /admin/api/schema.
//
//go:embed operator_schema.json
var operatorSchema []byte

// OperatorDocsURL is where the operator API's documentation lives; error
// answers link to its sections.
const OperatorDocsURL = "https://github.com/kiln-dev/kiln/blob/main/docs/operator-api.md"

// The operator API's rate limit when Options.OperatorRateLimit is zero: a
// burst big enough for a script paging through every add-on, refilled
// slowly enough that guessing the admin password is hopeless.
const (
	DefaultOperatorBurst     = 600
	DefaultOperatorPerMinute = 120
)

// operatorTimeout bounds one operator call; rotating credentials waits on
// the driver and on Heroku.
const operatorTimeout = 20 * time.Second

// opMaxReasonLen caps the reason of a forced deprovision (it goes into the
// audit trail).
const opMaxReasonLen = 500

// RateLimit sizes a token bucket: Burst tokens at most, PerMinute tokens
// added back a minute. Heroku's design guide asks for a token bucket so a
// client can burst and then continue at the refill rate.
type RateLimit struct {
	Burst     int
	PerMinute float64
}

// or is l with its zero (or negative) fields taken from def: every limit's
// settings default field by field.
func (l RateLimit) or(def RateLimit) RateLimit {
	if l.Burst <= 0 {
		l.Burst = def.Burst
	}
	if l.PerMinute <= 0 {
		l.PerMinute = def.PerMinute
	}
	return l
}

// Buckets keeps token buckets by key. cmd/web hands in Redis-backed buckets
// (internal/ratelimit) so a limit holds across web dynos; without them, or
// while they fail, each process keeps its own (the limit is then per dyno).
type Buckets interface {
	// Take takes one token from key's bucket: ok is false when it is empty,
	// remaining is what is left, wait how long until a token is back.
	Take(ctx context.Context, key string, burst int, perMinute float64) (remaining int, wait time.Duration, ok bool, err error)
}

// operatorAPI holds what the operator endpoints share.
type operatorAPI struct {
	srv      *server
	svc      *addon.Service
	password string
	limit    RateLimit
	shared   Buckets
	local    *opMemoryBuckets
	keeper   *addon.Keeper
	log      *slog.Logger
	routes   []opRoute
}

// newOperatorAPI builds the operator API from the options; it lists and
// finds add-ons through the service.
func newOperatorAPI(o Options, s *server) *operatorAPI {
	op := &operatorAPI{
		srv:      s,
		svc:      o.Service,
		password: o.AdminPassword,
		limit:    o.OperatorRateLimit,
		shared:   o.RateBuckets,
		local:    newOpMemoryBuckets(),
		log:      s.log,
	}
	op.keeper = o.Keeper
	op.limit = op.limit.or(RateLimit{Burst: DefaultOperatorBurst, PerMinute: DefaultOperatorPerMinute})
	return op
}

// operatorRoutes registers the operator API. Every route here must be in
// operator_schema.json and the other way round (a test checks both ways).
//
// The middleware order matters. answerErrors is outermost, so every
// refusal below it has the operator API's error shape. admit (password,
// guessing limit, rate limit) comes next, so every answer carries
// RateLimit-Remaining. sameOrigin then refuses state-changing calls a
// browser sends for another site (403): the admin password is also taken
// as Basic, which a browser that opened /metrics or /admin/queues
// attaches to any request, and a page elsewhere could otherwise post an
// action (Accept is a header any page may set). Reads pass, as do scripts,
// which send neither Sec-Fetch-Site nor Origin.
func (s *server) operatorRoutes(e *echo.Echo) {
	op := s.op
	g := e.Group(operatorPrefix, op.answerErrors, op.admit, sameOrigin, opRequireVersion, deadline(operatorTimeout))
	op.route(g, http.MethodGet, "/schema", op.schema)
	op.route(g, http.MethodGet, "/resources", op.list)
	op.route(g, http.MethodGet, "/resources/:id", op.info)
	op.route(g, http.MethodGet, "/resources/:id/events", op.events)
	op.route(g, http.MethodPost, "/resources/:id/actions/retry", op.retry)
	op.route(g, http.MethodPost, "/resources/:id/actions/rotate-credentials", op.rotate)
	op.route(g, http.MethodPost, "/resources/:id/actions/deprovision", op.deprovision)
	op.route(g, http.MethodGet, "/plans", op.plans)
}

// opRoute is a registered operator route, kept to tell a wrong method (405
// with Allow) from an unknown path (404): the group's catch-all answers
// both as not found.
type opRoute struct {
	method string
	parts  []string // the path split on "/"; ":x" matches any segment
}

func (op *operatorAPI) route(g *echo.Group, method, path string, h echo.HandlerFunc) {
	g.Add(method, path, h)
	op.routes = append(op.routes, opRoute{method: method, parts: strings.Split(operatorPrefix+path, "/")})
}

// allowed lists the methods registered for a path.
func (op *operatorAPI) allowed(path string) []string {
	parts := strings.Split(path, "/")
	var out []string
	for _, r := range op.routes {
		if len(r.parts) != len(parts) {
			continue
		}
		match := true
		for i, p := range r.parts {
			if p != parts[i] && !(strings.HasPrefix(p, ":") && parts[i] != "") {
				match = false
				break
			}
		}
		if match {
			out = append(out, r.method)
		}
	}
	return out
}

// operatorPrefix is where the operator API lives.
const operatorPrefix = "/admin/api"

// schema handles GET /admin/api/schema.
func (op *operatorAPI) schema(c echo.Context) error {
	return op.answer(c, http.StatusOK, json.RawMessage(operatorSchema))
}

// opListFilters are the query parameters GET /resources understands; any
// other is refused, so a typo (?stat=failed) cannot silently list
// everything.
var opListFilters = map[string]bool{"state": true, "plan": true, "name": true, "app": true, "pretty": true}

// list handles GET /admin/api/resources.
func (op *operatorAPI) list(c echo.Context) error {
	f, err := opFilter(c.QueryParams())
	if err != nil {
		return err
	}
	r, err := opParseRange(c.Request().Header.Get("Range"))
	if err != nil {
		return err
	}
	page, next, err := op.svc.List(c.Request().Context(), f, r)
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set("Accept-Ranges", opAcceptRanges)
	if len(page) > 0 {
		h.Set("Content-Range", opContentRange(r, page[0], page[len(page)-1]))
	}
	status := http.StatusOK
	if next != nil {
		h.Set("Next-Range", opFormatRange(*next))
		status = http.StatusPartialContent
	}
	views := make([]opResource, len(page))
	for i, a := range page {
		views[i] = op.resource(a)
	}
	if err := op.withLinks(c.Request().Context(), views); err != nil {
		return err
	}
	return op.answer(c, status, views)
}

// opFilter reads the listing's filters. Each may be given once; app
// matches the name of the app the add-on belongs to, as Heroku reports it
// (see addon.Filter.App).
func opFilter(q url.Values) (addon.Filter, error) {
	for k, v := range q {
		if !opListFilters[k] {
			return addon.Filter{}, addon.Errorf(addon.EMALFORMED, "Unknown query parameter %q; add-ons can be filtered by state, plan, name and app.", addon.Clip(k, addon.MaxEchoLen))
		}
		if len(v) > 1 {
			return addon.Filter{}, addon.Errorf(addon.EMALFORMED, "The query parameter %q is given %d times; give it once.", addon.Clip(k, addon.MaxEchoLen), len(v))
		}
	}
	f := addon.Filter{
		State: addon.State(q.Get("state")),
		Plan:  q.Get("plan"),
		Name:  q.Get("name"),
		App:   q.Get("app"),
	}
	if f.State != "" && !opKnownState(f.State) {
		return addon.Filter{}, addon.Errorf(addon.EINVALID, "Unknown state %q; add-ons are provisioning, provisioned, failed, deprovisioning or deprovisioned.", addon.Clip(string(f.State), addon.MaxEchoLen))
	}
	return f, nil
}

func opKnownState(s addon.State) bool {
	switch s {
	case addon.StateProvisioning, addon.StateProvisioned, addon.StateFailed, addon.StateDeprovisioning, addon.StateDeprovisioned:
		return true
	}
	return false
}

// resolve finds the add-on a path names by id or by name, as Heroku's
// design guide asks.
func (op *operatorAPI) resolve(c echo.Context) (*addon.Addon, error) {
	key := c.Param("id")
	ctx := c.Request().Context()
	if id, err := addon.ParseID(key); err == nil {
		return op.svc.Get(ctx, id)
	}
	return op.svc.FindByName(ctx, key)
}

// info handles GET /admin/api/resources/{id_or_name}.
func (op *operatorAPI) info(c echo.Context) error {
	a, err := op.resolve(c)
	if err != nil {
		return err
	}
	return op.answerView(c, http.StatusOK, a)
}

// events handles GET /admin/api/resources/{id_or_name}/events.
func (op *operatorAPI) events(c echo.Context) error {
	a, err := op.resolve(c)
	if err != nil {
		return err
	}
	events, err := op.svc.Events(c.Request().Context(), a.ID)
	if err != nil {
		return err
	}
	views := make([]opEvent, len(events))
	for i, e := range events {
		views[i] = opEventOf(a, e)
	}
	return op.answer(c, http.StatusOK, views)
}

// retry handles POST .../actions/retry: 202, the worker does the rest.
func (op *operatorAPI) retry(c echo.Context) error {
	a, err := op.resolve(c)
	if err != nil {
		return err
	}
	a, err = op.svc.Retry(c.Request().Context(), a.ID)
	if err != nil {
		return err
	}
	return op.answerView(c, http.StatusAccepted, a)
}

// rotate handles POST .../actions/rotate-credentials.
func (op *operatorAPI) rotate(c echo.Context) error {
	a, err := op.resolve(c)
	if err != nil {
		return err
	}
	rotate := op.svc.RotateCredentials
	if op.keeper != nil {
		rotate = op.keeper.Rotate
	}
	rotated, err := rotate(c.Request().Context(), a.ID)
	if err != nil && rotated != nil {
		return addon.Wrap(addon.ErrorCode(err), err, "The credentials of add-on %s were rotated but pushing them to Heroku failed (%s); Kiln keeps retrying the push in the background.", a.ID, addon.ErrorMessage(err))
	}
	if err != nil {
		return err
	}
	return op.answerView(c, http.StatusOK, rotated)
}

// opDeprovisionBody is the optional body of a forced deprovision.
type opDeprovisionBody struct {
	Reason string `json:"reason"`
}

// deprovision handles POST .../actions/deprovision (see
// addon.Service.ForceDeprovision for why Heroku is not told).
func (op *operatorAPI) deprovision(c echo.Context) error {
	a, err := op.resolve(c)
	if err != nil {
		return err
	}
	var body opDeprovisionBody
	if err := op.decodeOptional(c, &body); err != nil {
		return err
	}
	if len(body.Reason) > opMaxReasonLen {
		return addon.Errorf(addon.EINVALID, "The reason is longer than %d bytes.", opMaxReasonLen)
	}
	a, err = op.svc.ForceDeprovision(c.Request().Context(), a.ID, body.Reason)
	if err != nil {
		return err
	}
	return op.answerView(c, http.StatusAccepted, a)
}

// plans handles GET /admin/api/plans.
func (op *operatorAPI) plans(c echo.Context) error {
	catalog := op.svc.Catalog()
	views := make([]opPlan, 0, len(catalog))
	for _, slug := range catalog.Slugs() {
		views = append(views, op.plan(catalog[slug]))
	}
	return op.answer(c, http.StatusOK, views)
}

// answerView answers with one add-on's representation.
func (op *operatorAPI) answerView(c echo.Context, status int, a *addon.Addon) error {
	v, err := op.view(c.Request().Context(), a)
	if err != nil {
		return err
	}
	return op.answer(c, status, v)
}
