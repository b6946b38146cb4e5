// Package web is Kiln's HTTP adapter: it turns Heroku's Partner API calls (and,
// later, SSO, the customer dashboard and the operator pages under /admin) into
// calls of the domain's use cases, and domain errors into HTTP answers. It
// depends on the domain (internal/addon) and on Echo only; cmd/web hands it a
// wired *addon.Service and the health checks of the concrete adapters.
//
// The package is split by concern so new surfaces fit as new files:
// server.go (options, construction, routes), middleware.go (request id,
// request log, panic recovery, body cap, Basic auth), errors.go (the one
// error handler), decode.go (reading JSON bodies), partner.go (Heroku's
// Partner API), health.go (/healthz), sso.go and session.go (Heroku's single
// sign-on and the dashboard session), dashboard.go (the customer's
// dashboard, templates/ and assets/ embedded), monitoring.go (/admin/queues,
// /metrics) and metrics.go (the Prometheus instruments).
package web

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultBodyLimit caps request bodies when Options.BodyLimit is zero. Heroku's
// largest call (provision) is a few KiB; the cap keeps a hostile or broken
// caller from making the web process buffer megabytes.
const DefaultBodyLimit int64 = 64 << 10

// DefaultHealthTimeout bounds /healthz when Options.HealthTimeout is zero, so
// a hung dependency makes the check fail instead of hanging the load balancer.
const DefaultHealthTimeout = 2 * time.Second

// DefaultPartnerTimeout bounds a Partner API call when Options.PartnerTimeout
// is zero: Heroku gives up after 25 s (and wants an answer within 3 s), so a
// hung dependency must turn into a 503 Heroku will retry, not a dead request.
const DefaultPartnerTimeout = 20 * time.Second

// Check is one dependency /healthz reports on. cmd/web builds them from the
// concrete adapters (a Postgres ping, a Redis ping) so this package never
// imports infrastructure.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// Options is everything the web process needs; cmd/web fills it from the
// validated configuration.
type Options struct {
	// Service runs the use cases behind every endpoint.
	Service *addon.Service
	// AddonID is the manifest id: the Basic-auth user name Heroku sends.
	AddonID string
	// Passwords are the accepted manifest api.passwords; several are allowed
	// so a password can be rotated without downtime.
	Passwords []string
	// AdminPassword guards /admin (user name "admin"); reserved for the
	// operator pages.
	AdminPassword string
	// Log receives the request log and full details of server-side errors.
	Log *slog.Logger
	// Health is what /healthz checks.
	Health []Check
	// BodyLimit caps request bodies in bytes; zero means DefaultBodyLimit.
	BodyLimit int64
	// HealthTimeout bounds /healthz; zero means DefaultHealthTimeout.
	HealthTimeout time.Duration
	// PartnerTimeout bounds each Partner API call; zero means
	// DefaultPartnerTimeout.
	PartnerTimeout time.Duration
	// OperatorRateLimit sizes the operator API's token buckets; zero
	// fields mean DefaultOperatorBurst and DefaultOperatorPerMinute.
	OperatorRateLimit RateLimit
	// RateBuckets keeps those buckets, and the guessing limits' (admin
	// doors, Partner API), where every web dyno shares them (Redis); nil
	// keeps them in this process.
	RateBuckets Buckets
	// SSOSalt is the manifest's api.sso_salt (ADDON_SSO_SALT), which signs
	// Heroku's single sign-on tokens. Empty refuses every sign-in.
	SSOSalt string
	// SessionKeys are the raw ENCRYPTION_KEY keys, newest first; dashboard
	// session keys are derived from them (see session.go). None refuses
	// every sign-in.
	SessionKeys [][]byte
	// SessionTTL is how long a dashboard session lasts; zero means
	// DefaultSessionTTL.
	SessionTTL time.Duration
	// Nonces remembers used SSO tokens across web dynos, so a sign-in
	// cannot be replayed. None refuses every sign-in.
	Nonces addon.Nonces
	// Queues is the queue dashboard (asynqmon, built by cmd/web with
	// RootPath QueuesPath), served at QueuesPath behind the admin password;
	// nil leaves it out.
	Queues http.Handler
	// Collectors are added to /metrics (the job queues' statistics).
	Collectors []prometheus.Collector
	// Keeper keeps add-ons in step with Heroku: the webhook receiver, the
	// app names the operator API shows, asynchronous deprovisioning and
	// credential rolls. Nil leaves those out.
	Keeper *addon.Keeper
	// AdminGuessLimit sizes the guessing limit every admin door shares,
	// per client address; zero fields mean DefaultAdminGuessBurst and
	// DefaultAdminGuessPerMinute.
	AdminGuessLimit RateLimit
	// AdminGuard is that limit, when the caller shares one guard between
	// several handlers; nil builds one on RateBuckets.
	AdminGuard *AdminGuard
	// PartnerGuessLimit sizes the guessing limit of the Partner API's
	// Basic auth (ADDON_PASSWORD), per client address, kept on
	// RateBuckets; zero fields mean the admin limit's defaults
	// (DefaultAdminGuessBurst, DefaultAdminGuessPerMinute).
	PartnerGuessLimit RateLimit
}

// server holds the options the handlers share. Each surface (partner, health,
// and later sso, dashboard, admin) adds its handlers as methods in its own
// file and its routes in routes.
type server struct {
	svc            *addon.Service
	addonID        string
	passwords      []string
	log            *slog.Logger
	health         []Check
	bodyLimit      int64
	healthTimeout  time.Duration
	partnerTimeout time.Duration
	op             *operatorAPI
	adminPassword  string
	ssoSalt        string
	sessions       *sessions
	nonces         addon.Nonces
	queues         http.Handler
	metrics        *metrics
	keeper         *addon.Keeper
	guard          *AdminGuard
	partnerGuard   *GuessGuard
}

// New builds Kiln's HTTP handler. It returns the *echo.Echo so cmd/web can
// serve it from its own http.Server (for graceful shutdown) and tests can
// drive it with httptest.
func New(o Options) *echo.Echo {
	s := &server{
		svc:            o.Service,
		addonID:        o.AddonID,
		passwords:      nonEmpty(o.Passwords),
		log:            o.Log,
		health:         o.Health,
		bodyLimit:      o.BodyLimit,
		healthTimeout:  o.HealthTimeout,
		partnerTimeout: o.PartnerTimeout,
		adminPassword:  o.AdminPassword,
		ssoSalt:        o.SSOSalt,
		nonces:         o.Nonces,
		queues:         o.Queues,
		keeper:         o.Keeper,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	var err error
	if s.sessions, err = newSessions(o.SessionKeys, o.SessionTTL); err != nil {
		s.log.Error("dashboard sessions disabled: single sign-on will be refused", "err", err)
		s.sessions = &sessions{}
	}
	s.guard = o.AdminGuard
	if s.guard == nil {
		s.guard = NewAdminGuard(o.RateBuckets, o.AdminGuessLimit, s.log)
	}
	s.partnerGuard = NewGuessGuard("partner", o.RateBuckets, o.PartnerGuessLimit, s.log)
	collectors := o.Collectors
	if o.Keeper != nil {
		collectors = append(collectors[:len(collectors):len(collectors)], &accessRefused{keeper: o.Keeper, log: s.log})
	}
	s.metrics = newMetrics(o.Service, collectors, s.log)
	if s.bodyLimit <= 0 {
		s.bodyLimit = DefaultBodyLimit
	}
	if s.healthTimeout <= 0 {
		s.healthTimeout = DefaultHealthTimeout
	}
	if s.partnerTimeout <= 0 {
		s.partnerTimeout = DefaultPartnerTimeout
	}
	s.op = newOperatorAPI(o, s)

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	// Echo's own diagnostics ("response already committed", server errors)
	// go to the same structured log as everything else.
	e.Logger.SetOutput(slog.NewLogLogger(s.log.Handler(), slog.LevelWarn).Writer())
	e.StdLogger = slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)

	// Order matters: the request id comes first so every answer (errors
	// included) carries it; the log wraps recovery so a panic is logged with
	// the 500 it became; the body cap comes next to the handlers, and the refusal of input Postgres
	// cannot store (storable.go) reads the capped body.
	e.Use(requestID, s.metrics.measure(e), s.logRequests, recoverPanic, s.limitBody, s.refuseUnstorable)
	s.routes(e)
	return e
}

// routes registers every endpoint. New surfaces add their group here.
func (s *server) routes(e *echo.Echo) {
	e.GET("/", s.home)
	e.HEAD("/", s.home)
	e.GET("/healthz", s.healthz)
	e.HEAD("/healthz", s.healthz) // some load balancers probe with HEAD

	// ADDON_PASSWORD guesses are limited per client address (see
	// GuessGuard); Heroku's own calls cost the limit no Redis round trip.
	heroku := e.Group("/heroku", basicAuthGuarded("Kiln", s.addonID, s.passwords, s.partnerGuard), deadline(s.partnerTimeout))
	heroku.POST("/resources", s.provision)
	heroku.PUT("/resources/:uuid", s.changePlan)
	heroku.DELETE("/resources/:uuid", s.deprovision)
	// Webhook deliveries carry Heroku's signature, not the manifest's
	// Basic auth.
	e.POST("/heroku/webhooks", s.webhook)
	s.operatorRoutes(e)

	s.pprofRoutes(e)
	s.customerRoutes(e)
	s.monitoringRoutes(e)
	s.tenantRoutes(e)
}

// nonEmpty drops empty passwords, so a stray comma in ADDON_PASSWORD can
// never make the empty password valid.
func nonEmpty(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
