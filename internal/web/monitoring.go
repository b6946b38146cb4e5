package web

import (
	"bytes"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/labstack/echo/v4"
)

// This file is the operators' pages that are not Kiln's own API: the asynq
// dashboard (asynqmon) at /admin/queues and /metrics, both behind Basic auth
// admin:$ADMIN_PASSWORD.

// QueuesPath is where the queue dashboard is mounted; cmd/web builds
// asynqmon with this RootPath.
const QueuesPath = "/admin/queues"

// adminUser is the Basic-auth user name of the operators' pages.
const adminUser = "admin"

// adminRealm is the Basic-auth realm of the operators' browser pages (the
// profiler's too), so a browser asks for the password once.
const adminRealm = "Kiln admin"

// queuesPolicy is the Content-Security-Policy of the queue dashboard: its
// scripts, styles, images and API calls may come from Kiln only, so even a
// future asynqmon that links an outside font or CDN cannot make an
// operator's browser reach out. asynqmon's index has an inline script and
// its styles are injected at run time, hence 'unsafe-inline'.
const queuesPolicy = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"

// monitoringRoutes registers /metrics and, when cmd/web provides it, the
// queue dashboard.
func (s *server) monitoringRoutes(e *echo.Echo) {
	admin := s.adminAuth()
	e.GET("/metrics", echo.WrapHandler(s.metrics.handler()), admin)
	if s.queues == nil {
		return
	}
	h := echo.WrapHandler(offline(s.queues))
	e.Any(QueuesPath, h, admin, sameOrigin)
	e.Any(QueuesPath+"/*", h, admin, sameOrigin)
}

// sameOrigin refuses state-changing requests that a browser sent on behalf
// of another site. The operator pages use Basic auth, which browsers attach
// to any request, so without this a page elsewhere could post to asynqmon's
// API (pause a queue, delete tasks) with an operator's cached credentials;
// the dashboard's forms get it on top of their CSRF token. Requests without
// browser headers (curl, scripts) are not affected.
func sameOrigin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			return next(c)
		}
		if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
			return addon.Errorf(addon.EFORBIDDEN, "Cross-site requests are refused.")
		}
		if origin := r.Header.Get(echo.HeaderOrigin); origin != "" {
			u, err := url.Parse(origin)
			if err != nil || !strings.EqualFold(u.Host, r.Host) {
				return addon.Errorf(addon.EFORBIDDEN, "Cross-site requests are refused.")
			}
		}
		return next(c)
	}
}

// externalLink matches a <link> element that loads something from another
// host (asynqmon's index links Google Fonts).
var externalLink = regexp.MustCompile(`(?i)<link\b[^>]*\bhref\s*=\s*["']?(?:https?:)?//[^>]*>`)

// offline serves h so that its pages load without any outside network:
// <link> elements pointing at other hosts are removed from HTML answers
// (asynqmon's fonts fall back to the system's sans-serif; its icons are
// inline SVG) and the Content-Security-Policy forbids outside hosts for
// everything else. JSON answers of the API pass through untouched.
func offline(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", queuesPolicy)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if r.Method != http.MethodGet || strings.HasPrefix(r.URL.Path, QueuesPath+"/api/") {
			h.ServeHTTP(w, r)
			return
		}
		b := &buffered{header: w.Header()}
		h.ServeHTTP(b, r)
		body := b.body.Bytes()
		ct := w.Header().Get("Content-Type")
		if ct == "" {
			ct = http.DetectContentType(body)
			w.Header().Set("Content-Type", ct)
		}
		if strings.HasPrefix(ct, "text/html") {
			body = externalLink.ReplaceAll(body, nil)
			w.Header().Set("Cache-Control", "no-store")
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		status := b.status
		if status == 0 {
			status = http.StatusOK
		}
		w.WriteHeader(status)
		_, _ = w.Write(body)
	})
}

// buffered is a ResponseWriter that keeps the answer in memory.
type buffered struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *buffered) Header() http.Header { return b.header }

func (b *buffered) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *buffered) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}
