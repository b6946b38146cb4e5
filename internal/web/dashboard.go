package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/secret"
	"github.com/labstack/echo/v4"
)

// This file is the customer's dashboard: one server-rendered page per
// add-on under /dashboard/resources/:uuid, reached through single sign-on,
// and its one form (rotate credentials). Templates and assets are embedded,
// and the Content-Security-Policy allows nothing from outside Kiln.

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets/*
var assetFS embed.FS

// pages are the dashboard's templates, parsed once.
var pages = template.Must(template.ParseFS(templateFS, "templates/*.html"))

// assetVersion is a hash of the embedded assets, appended to their URLs so
// a deploy that changes them is never hidden by a browser cache.
var assetVersion = func() string {
	h := sha256.New()
	_ = fs.WalkDir(assetFS, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assetFS.ReadFile(p)
		h.Write([]byte(p))
		h.Write(b)
		return err
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}()

// dashboardPolicy is the Content-Security-Policy of every dashboard page:
// scripts, styles and images from Kiln only, no framing, forms post to Kiln
// only.
const dashboardPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// maxEvents bounds the history shown: an add-on signed in to daily grows a
// long audit trail.
const maxEvents = 50

// rotatePath is the rotate-credentials action of one add-on.
func rotatePath(id addon.ID) string { return dashboardPath(id) + "/actions/rotate-credentials" }

// customerRoutes registers single sign-on and the dashboard.
func (s *server) customerRoutes(e *echo.Echo) {
	e.POST(SSOPath, s.ssoLogin, deadline(s.partnerTimeout))
	assets, _ := fs.Sub(assetFS, "assets")
	files := http.StripPrefix("/dashboard/assets/", http.FileServer(http.FS(assets)))
	dash := e.Group("/dashboard", deadline(s.partnerTimeout))
	dash.GET("/assets/*", func(c echo.Context) error {
		h := c.Response().Header()
		h.Set(echo.HeaderCacheControl, "public, max-age=86400")
		h.Set(echo.HeaderXContentTypeOptions, "nosniff")
		files.ServeHTTP(c.Response(), c.Request())
		return nil
	})
	dash.GET("/resources/:uuid", s.dashboard)
	dash.POST("/resources/:uuid/actions/rotate-credentials", s.rotateCredentials, sameOrigin)
}

// pageHeaders are set on every dashboard answer carrying customer data: it
// holds credentials, so no cache (browser or proxy) may keep it.
func pageHeaders(c echo.Context) {
	h := c.Response().Header()
	h.Set(echo.HeaderCacheControl, "no-store")
	h.Set("Pragma", "no-cache")
	h.Set(echo.HeaderContentSecurityPolicy, dashboardPolicy)
	h.Set(echo.HeaderXContentTypeOptions, "nosniff")
	h.Set(echo.HeaderXFrameOptions, "DENY")
	h.Set(echo.HeaderReferrerPolicy, "no-referrer")
}

// authorize returns the request's session for the add-on in the path, or
// the refusal. It never touches the add-on before the session is checked.
func (s *server) authorize(c echo.Context) (*session, error) {
	// A path that is not an add-on id parses to "", which no session is
	// for: it is refused like any other add-on's page.
	id, _ := addon.ParseID(c.Param("uuid"))
	sess, why := s.sessions.open(c, id, time.Now())
	if sess == nil {
		if why == sessionUnreadable {
			s.log.Info("dashboard session refused: it cannot be opened (sealed with a key no longer in ENCRYPTION_KEY, or altered)",
				"request_id", requestIDOf(c))
		}
		return nil, errSession(why)
	}
	return sess, nil
}

// loadForDashboard reads the add-on a session may see; deprovisioned (or
// deprovisioning) add-ons are gone for the customer.
func (s *server) loadForDashboard(c echo.Context, id addon.ID) (*addon.Addon, error) {
	a, err := s.svc.Get(c.Request().Context(), id)
	if err != nil {
		return nil, err
	}
	if a.State == addon.StateDeprovisioned || a.State == addon.StateDeprovisioning {
		return nil, addon.Errorf(addon.EGONE, "This add-on was deprovisioned.")
	}
	return a, nil
}

// dashVar is one config var as the dashboard lists it.
type dashVar struct{ Name, Value string }

// dashEvent is one line of the history. Consecutive sign-ins are one line
// (Count of them, the first at Since), so a dashboard opened daily keeps
// its history readable.
type dashEvent struct {
	At, ISO, Kind, Message string
	State                  addon.State
	Count                  int
	Since, SinceISO        string
}

// dashNotice is a message shown once after an action, chosen by a fixed code in
// the redirect's query so no caller-supplied text reaches the page.
type dashNotice struct{ Kind, Text string }

var dashNotices = map[string]dashNotice{
	"rotated":          {"ok", "Credentials rotated. Heroku is restarting your app with the new ones."},
	"push-failed":      {"error", "Credentials were rotated, but Heroku could not be told yet. Contact support if your app cannot connect."},
	"not-provisioned":  {"error", "Credentials can only be rotated once the add-on is provisioned."},
	"rotate-refused":   {"error", "This add-on's credentials cannot be rotated from here."},
	"rotate-failed":    {"error", "Rotating the credentials failed; nothing changed. Please try again shortly."},
	"confirm-required": {"error", "Tick the box to confirm you want to rotate the credentials."},
	"roll-pending":     {"error", "The credentials replaced by the last rotation still work; rotate again once they have stopped (see below when)."},
}

// dashboardPage is what dashboard.html renders.
type dashboardPage struct {
	Title, AssetVersion string
	*addon.Addon
	PlanName            string
	ShowSlug            bool // the plan's slug says more than its name
	App, ContextApp     string
	Email               string
	Created, CreatedISO string
	Updated, UpdatedISO string
	Config              []dashVar
	URLVar              string
	Panel               []addon.PanelField
	PanelNote           string
	Events              []dashEvent
	TotalEvents         int
	MoreEvents          bool
	CanRotate           bool
	RotateAction, CSRF  string
	// Grace is how long old credentials keep working after a rotation
	// ("1h0m0s"), empty when they stop at once; OldUntil, when set, is
	// when those of the last rotation stop.
	Grace, OldUntil, OldUntilISO string
	Notice                       *dashNotice
}

// dashboard handles GET /dashboard/resources/:uuid.
func (s *server) dashboard(c echo.Context) error {
	pageHeaders(c)
	sess, err := s.authorize(c)
	if err != nil {
		return err
	}
	a, err := s.loadForDashboard(c, sess.Resource)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	events, err := s.svc.Events(ctx, a.ID)
	if err != nil {
		return err
	}
	p := dashboardPage{
		Title:        a.Name,
		AssetVersion: assetVersion,
		Addon:        a,
		PlanName:     a.Plan,
		App:          sess.App,
		ContextApp:   sess.ContextApp,
		Email:        sess.Email,
		Created:      dashTime(a.CreatedAt),
		CreatedISO:   a.CreatedAt.UTC().Format(time.RFC3339),
		Updated:      dashTime(a.UpdatedAt),
		UpdatedISO:   a.UpdatedAt.UTC().Format(time.RFC3339),
		URLVar:       s.svc.Prefix() + "_URL",
		TotalEvents:  len(events),
		RotateAction: rotatePath(a.ID),
		CSRF:         sess.CSRF,
	}
	if p.Title == "" {
		p.Title = string(a.ID)
		a.Name = string(a.ID)
	}
	if plan, err := s.svc.Plan(a.Plan); err == nil && plan.Name != "" {
		p.PlanName = plan.Name
	}
	p.ShowSlug = !strings.EqualFold(p.PlanName, a.Plan)
	cfg := s.svc.Config(a)
	for _, k := range sortedNames(cfg) {
		p.Config = append(p.Config, dashVar{Name: k, Value: cfg[k]})
	}
	p.Panel, p.PanelNote = s.panel(c, a)
	for _, e := range slices.Backward(events) {
		if n := len(p.Events); n > 0 && e.Kind == ssoEventKind && p.Events[n-1].Kind == ssoEventKind {
			last := &p.Events[n-1]
			last.Count++
			last.Since, last.SinceISO = dashTime(e.At), e.At.UTC().Format(time.RFC3339)
			continue
		}
		if len(p.Events) == maxEvents {
			p.MoreEvents = true
			break
		}
		p.Events = append(p.Events, dashEvent{At: dashTime(e.At), ISO: e.At.UTC().Format(time.RFC3339), Kind: e.Kind, Message: e.Message, State: e.State, Count: 1})
	}
	p.CanRotate = s.svc.CanRotate(a)
	if s.svc.Abilities().Roll && s.keeper != nil {
		if s.keeper.Grace > 0 {
			p.Grace = dashDuration(s.keeper.Grace)
		}
		if l, err := s.keeper.Link(ctx, a.ID); err == nil {
			if l.AppName != "" {
				p.App = l.AppName
			}
			if l.RetiredVars != nil && l.RetireAt.After(time.Now()) {
				p.OldUntil, p.OldUntilISO = dashTime(l.RetireAt), l.RetireAt.UTC().Format(time.RFC3339)
			}
		}
	}
	if n, ok := dashNotices[c.QueryParam("notice")]; ok {
		p.Notice = &n
	}
	return renderPage(c, http.StatusOK, "dashboard.html", p)
}

// dashDuration says a grace period the way a person reads it.
func dashDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		if d == time.Hour {
			return "1 hour"
		}
		return fmt.Sprintf("%d hours", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%d minutes", d/time.Minute)
	}
	return d.String()
}

// ssoEventKind is the audit trail's kind for a sign-in.
const ssoEventKind = "sso"

// panel asks the driver for the resource panel. A failing driver costs the
// panel, not the page.
func (s *server) panel(c echo.Context, a *addon.Addon) ([]addon.PanelField, string) {
	if !s.svc.Abilities().Panel {
		return nil, "This kind of add-on has no details to show."
	}
	if a.State != addon.StateProvisioned {
		return nil, "Details appear once the add-on is provisioned."
	}
	fields, err := s.svc.Panel(c.Request().Context(), a)
	if err != nil {
		s.log.Warn("dashboard panel failed", "request_id", requestIDOf(c), "addon", a.ID, "err", err)
		return nil, "Details are unavailable right now; please reload in a moment."
	}
	return fields, ""
}

// rotateCredentials handles the dashboard's rotate form: a POST carrying the
// session's CSRF token (and, from browsers, a same-origin Origin). It
// answers with a redirect back to the dashboard and a fixed notice.
func (s *server) rotateCredentials(c echo.Context) error {
	pageHeaders(c)
	sess, err := s.authorize(c)
	if err != nil {
		return err
	}
	if !secret.Equal(c.Request().PostFormValue("csrf"), sess.CSRF) {
		return addon.Errorf(addon.EFORBIDDEN, "This form has expired. Reload the page and try again.")
	}
	back := func(code string) error {
		return c.Redirect(http.StatusSeeOther, dashboardPath(sess.Resource)+"?notice="+code)
	}
	if c.Request().PostFormValue("confirm") != "yes" {
		return back("confirm-required")
	}
	a, err := s.loadForDashboard(c, sess.Resource)
	if err != nil {
		return err
	}
	// Whether this add-on may rotate is the service's rule (its errors
	// below say why not); the page only turns them into notices.
	rotate := s.svc.RotateCredentials
	if s.keeper != nil {
		rotate = s.keeper.Rotate
	}
	after, err := rotate(c.Request().Context(), a.ID)
	switch {
	case err == nil:
		s.log.Info("credentials rotated from the dashboard", "request_id", requestIDOf(c), "addon", a.ID, "user_id", sess.UserID)
		return back("rotated")
	case after != nil:
		s.log.Error("credentials rotated but not pushed to Heroku", "request_id", requestIDOf(c), "addon", a.ID, "err", err)
		return back("push-failed")
	case addon.ErrorCode(err) == addon.ECONFLICT && a.State == addon.StateProvisioned:
		return back("roll-pending")
	case addon.ErrorCode(err) == addon.ECONFLICT:
		return back("not-provisioned")
	case addon.ErrorCode(err) == addon.EINVALID || addon.ErrorCode(err) == addon.EUNSUPPORTED:
		return back("rotate-refused")
	default:
		s.log.Error("rotating credentials failed", "request_id", requestIDOf(c), "addon", a.ID, "err", err)
		return back("rotate-failed")
	}
}

// render executes a page template into a buffer first, so a template error
// becomes a clean 500 instead of half a page.
func renderPage(c echo.Context, status int, name string, data any) error {
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, name, data); err != nil {
		return addon.Wrap(addon.EINTERNAL, err, "Internal error.")
	}
	return c.HTMLBlob(status, b.Bytes())
}

// dashError is what errorHTML renders.
type dashError struct {
	Title, AssetVersion string
	App                 string
	Heading, Message    string
	RequestID           string
}

// htmlErrors reports whether failures of a request are answered with an
// HTML page rather than JSON: the customer's browser on the sign-in and
// dashboard pages.
func htmlErrors(r *http.Request) bool {
	return r.URL.Path == SSOPath || strings.HasPrefix(r.URL.Path, "/dashboard/")
}

// writeErrorPage answers a failure as an HTML page, with the same status
// and caller-safe message the JSON answer would carry.
func (s *server) writeErrorPage(c echo.Context, status int, message string) error {
	pageHeaders(c)
	heading := http.StatusText(status)
	switch status {
	case http.StatusUnauthorized:
		heading = "Please sign in again"
	case http.StatusForbidden:
		heading = "Access refused"
	case http.StatusNotFound:
		heading = "Not found"
	case http.StatusGone:
		heading = "This add-on is gone"
	}
	return renderPage(c, status, "error.html", dashError{
		Title:        heading,
		AssetVersion: assetVersion,
		Heading:      heading,
		Message:      message,
		RequestID:    requestIDOf(c),
	})
}

// dashTime writes a time the way the dashboard shows it.
func dashTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// sortedNames returns a map's keys in order.
func sortedNames(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
