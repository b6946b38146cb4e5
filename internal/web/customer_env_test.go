package web_test

import (
	"context"
	"crypto/sha1" //nolint:gosec // Heroku's resource_token is SHA-1; the tests sign as Heroku does.
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/drivers/account"
	herokuapi "github.com/kiln-dev/kiln/internal/heroku"
	"github.com/kiln-dev/kiln/internal/herokusim"
	"github.com/kiln-dev/kiln/internal/jobs"
	"github.com/kiln-dev/kiln/internal/kilntest"
	"github.com/kiln-dev/kiln/internal/postgres"
	"github.com/kiln-dev/kiln/internal/postgres/pgtest"
	"github.com/kiln-dev/kiln/internal/web"
)

// The secrets of the customer-facing test server.
const (
	ssoSalt       = "sso-salt-0123456789abcdef0123456789"
	adminPassword = "admin-password-0123456789abcdef"
	testPrefix    = "KILN_TEST"
)

// customer is a Kiln web handler wired as cmd/web wires it for single
// sign-on, the dashboard and the operator pages: a real store (which is
// also the nonce store), the account driver, a queue, asynqmon and the
// queue metrics on a leased Redis, and the Heroku simulator as Platform.
type customer struct {
	e      *echo.Echo
	store  *postgres.DB
	svc    *addon.Service
	driver *account.Driver
	sim    *herokusim.Sim
	queue  *jobs.Queue
	redis  asynq.RedisConnOpt
	logs   *syncBuffer
	keys   [][]byte
}

// customerConfig tunes newCustomer.
type customerConfig struct {
	// keys are the raw ENCRYPTION_KEY keys; nil means one fresh key.
	keys [][]byte
	// grace, when set, wires a keeper: rotations roll with this grace.
	grace time.Duration
}

func newCustomer(tb testing.TB, cfg customerConfig) *customer {
	tb.Helper()
	keys := cfg.keys
	if keys == nil {
		keys = [][]byte{rawKey(tb)}
	}
	store, _ := pgtest.Store(tb, keys...)

	redisOpt, err := asynq.ParseRedisURI(kilntest.Redis(tb))
	if err != nil {
		tb.Fatal(err)
	}
	queue := jobs.NewQueue(redisOpt)
	tb.Cleanup(func() { queue.Close() })
	sim, simSrv := herokusim.NewServer(tb, herokusim.Options{ClientSecret: "client-secret"})
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	driver := account.New(store.Gorm(), "https://kiln.example.com")
	svc := addon.NewService(addon.Deps{
		Store:    store,
		Queue:    queue,
		Platform: herokuapi.New(herokuapi.Options{APIURL: simSrv.URL, IDURL: simSrv.URL, ClientSecret: "client-secret", Log: log}),
		Driver:   driver,
		Tenants:  driver,
	}, addon.Options{
		Prefix:   testPrefix,
		Deadline: 11 * time.Hour,
		Log:      log,
	})
	mon := asynqmon.New(asynqmon.Options{RootPath: web.QueuesPath, RedisConnOpt: redisOpt})
	tb.Cleanup(func() { mon.Close() })
	qm := jobs.NewQueueMetrics(redisOpt, log)
	tb.Cleanup(func() { qm.Close() })
	var keeper *addon.Keeper
	if cfg.grace > 0 {
		keeper = &addon.Keeper{Service: svc, Links: store, Grace: cfg.grace}
	}
	e := web.New(web.Options{
		Keeper:        keeper,
		Service:       svc,
		AddonID:       testAddonID,
		Passwords:     []string{password1},
		AdminPassword: adminPassword,
		SSOSalt:       ssoSalt,
		SessionKeys:   keys,
		Nonces:        store,
		Queues:        mon,
		Collectors:    []prometheus.Collector{qm},
		Log:           log,
	})
	return &customer{e: e, store: store, svc: svc, driver: driver, sim: sim, queue: queue, redis: redisOpt, logs: logs, keys: keys}
}

func rawKey(tb testing.TB) []byte {
	tb.Helper()
	raw, err := base64.StdEncoding.DecodeString(kilntest.Key())
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// provisioned runs the real pipeline for a new add-on against the
// simulator, synchronously (no worker): provision, grant exchange, resource,
// config push, provisioned. It returns the add-on.
func (c *customer) provisioned(tb testing.TB) *addon.Addon {
	tb.Helper()
	ctx := context.Background()
	id := addon.ID(uuid.NewString())
	grant := c.sim.NewAddon(string(id))
	_, _, err := c.svc.Provision(ctx, addon.ProvisionRequest{
		ID: id, Name: "acme-primary-" + string(id)[:8], Plan: "basic", Region: "us", Grant: &grant,
	})
	if err != nil {
		tb.Fatalf("provision: %v", err)
	}
	if err := c.svc.GrantJob(ctx, id); err != nil {
		tb.Fatalf("exchange grant: %v", err)
	}
	if err := c.svc.ProvisionJob(ctx, id); err != nil {
		tb.Fatalf("advance: %v", err)
	}
	a, err := c.store.Get(ctx, id)
	if err != nil {
		tb.Fatal(err)
	}
	if a.State != addon.StateProvisioned {
		tb.Fatalf("add-on is %s, want provisioned", a.State)
	}
	return a
}

// signer builds sign-in forms as Heroku's dashboard does.
type signer struct {
	id, salt        string
	at              time.Time
	userID, email   string
	app, contextApp string
	navData         string
	omitUserToken   bool   // send only resource_token
	omitResToken    bool   // send only user_scoped_resource_token
	legacy          bool   // name the fields id and token, as old Heroku did
	signedEmail     string // sign the user-scoped token for this email instead
}

func newSigner(id string) signer {
	return signer{
		id: id, salt: ssoSalt, at: time.Now(),
		userID: "0b0b0b0b-1111-4222-8333-444444444444", email: "dev@example.com",
		app: "acme-app", contextApp: "acme-app",
		navData: base64.URLEncoding.EncodeToString([]byte(`{"appname":"acme-app","addon":"` + id + `"}`)),
	}
}

func sha1Hex(s string) string {
	sum := sha1.Sum([]byte(s)) //nolint:gosec // see import
	return hex.EncodeToString(sum[:])
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func (s signer) form() url.Values {
	ts := strconv.FormatInt(s.at.Unix(), 10)
	f := url.Values{
		"timestamp":   {ts},
		"nav-data":    {s.navData},
		"email":       {s.email},
		"user_id":     {s.userID},
		"app":         {s.app},
		"context_app": {s.contextApp},
	}
	idField, tokenField := "resource_id", "resource_token"
	if s.legacy {
		idField, tokenField = "id", "token"
	}
	f.Set(idField, s.id)
	if !s.omitResToken {
		f.Set(tokenField, sha1Hex(s.id+":"+s.salt+":"+ts))
	}
	if !s.omitUserToken {
		email := s.email
		if s.signedEmail != "" {
			email = s.signedEmail
		}
		f.Set("user_scoped_resource_token", sha256Hex(s.id+":"+s.salt+":"+ts+":"+s.userID+":"+email))
	}
	return f
}

// page is an HTML (or any non-JSON) answer.
type page struct {
	status  int
	header  http.Header
	body    string
	cookies map[string]*http.Cookie
}

// do sends one request to the handler; cookies are sent as given.
func do(tb testing.TB, h http.Handler, method, path string, form url.Values, header map[string]string, cookies ...*http.Cookie) page {
	tb.Helper()
	var body io.Reader = http.NoBody
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	for _, c := range cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	p := page{status: rec.Code, header: rec.Header(), body: rec.Body.String(), cookies: map[string]*http.Cookie{}}
	for _, c := range res.Cookies() {
		p.cookies[c.Name] = c
	}
	return p
}

// signIn posts the form to /sso/login.
func (c *customer) signIn(tb testing.TB, f url.Values, header map[string]string) page {
	tb.Helper()
	return do(tb, c.e, http.MethodPost, web.SSOPath, f, header)
}

// session signs in to the add-on and returns the session cookie.
func (c *customer) session(tb testing.TB, id addon.ID) *http.Cookie {
	tb.Helper()
	p := c.signIn(tb, newSigner(string(id)).form(), nil)
	if p.status != http.StatusSeeOther || p.cookies["kiln_session"] == nil {
		tb.Fatalf("sign in to %s: %d %v %s", id, p.status, p.cookies, p.body)
	}
	return p.cookies["kiln_session"]
}

// admin is the Basic-auth header of the operator pages.
func admin(password string) map[string]string {
	return map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+password))}
}
