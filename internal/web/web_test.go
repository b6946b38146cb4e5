package web_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/drivers/account"
	"github.com/kiln-dev/kiln/internal/jobs"
	"github.com/kiln-dev/kiln/internal/kilntest"
	"github.com/kiln-dev/kiln/internal/postgres"
	"github.com/kiln-dev/kiln/internal/secret"
	"github.com/kiln-dev/kiln/internal/web"
)

// Credentials the test server accepts: the add-on id and two passwords, as
// during a password rotation (ADDON_PASSWORD="old,new").
const (
	testAddonID = "kiln-test"
	password1   = "first-password-0123456789abcdef"
	password2   = "second-password-0123456789abcdef"
)

// TestMain quiets go-redis, which prints every failed dial of the tests
// that point the queue at an unreachable Redis on purpose.
func TestMain(m *testing.M) {
	redis.SetLogger(quiet{})
	os.Exit(m.Run())
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// unreachable is an address nothing listens on.
const unreachable = "127.0.0.1:1"

// envConfig says which dependencies of a test server are down.
type envConfig struct {
	// redisDown points the queue (and the redis health check) at a port
	// nothing listens on.
	redisDown bool
	// healthTimeout and extraChecks tune /healthz.
	healthTimeout time.Duration
	extraChecks   []web.Check
	// rateBuckets and partnerGuessLimit are passed to web.Options as
	// RateBuckets and PartnerGuessLimit (zero: per process, defaults).
	rateBuckets       web.Buckets
	partnerGuessLimit web.RateLimit
}

// env is one Kiln web handler wired like cmd/web does, on a fresh Postgres
// database (reached through a proxy the test can cut) and a leased Redis
// database.
type env struct {
	e     *echo.Echo
	store *postgres.DB
	redis asynq.RedisConnOpt // nil when Redis is down
	proxy *tcpProxy
	logs  *syncBuffer
}

func newEnv(tb testing.TB, cfg envConfig) *env {
	tb.Helper()
	ctx := context.Background()

	dbURL := kilntest.Postgres(tb)
	if err := postgres.Migrate(ctx, dbURL); err != nil {
		tb.Fatalf("migrate: %v", err)
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		tb.Fatal(err)
	}
	proxy := startProxy(tb, u.Host)
	u.Host = proxy.Addr()
	raw, err := base64.StdEncoding.DecodeString(kilntest.Key())
	if err != nil {
		tb.Fatal(err)
	}
	keys, err := secret.New([][]byte{raw})
	if err != nil {
		tb.Fatal(err)
	}
	store, err := postgres.Open(ctx, u.String(), keys)
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() { store.Close() })

	redisURL := "redis://" + unreachable
	var redisOpt asynq.RedisConnOpt
	if !cfg.redisDown {
		redisURL = kilntest.Redis(tb)
		if redisOpt, err = asynq.ParseRedisURI(redisURL); err != nil {
			tb.Fatal(err)
		}
	}
	queueOpt, err := asynq.ParseRedisURI(redisURL)
	if err != nil {
		tb.Fatal(err)
	}
	queue := jobs.NewQueue(queueOpt)
	tb.Cleanup(func() { queue.Close() })
	rOpt, err := redis.ParseURL(redisURL)
	if err != nil {
		tb.Fatal(err)
	}
	rdb := redis.NewClient(rOpt)
	tb.Cleanup(func() { rdb.Close() })

	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	svc := addon.NewService(addon.Deps{
		Store:  store,
		Queue:  queue,
		Driver: account.New(store.Gorm(), "http://kiln.test"),
	}, addon.Options{
		Prefix:   "KILN_TEST",
		Deadline: 11 * time.Hour,
		Log:      log,
	})
	checks := []web.Check{
		{Name: "postgres", Check: store.Ping},
		{Name: "redis", Check: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
	}
	e := web.New(web.Options{
		Service:           svc,
		AddonID:           testAddonID,
		Passwords:         []string{password1, password2},
		AdminPassword:     "admin-password-0123456789abcdef-web",
		Log:               log,
		Health:            append(checks, cfg.extraChecks...),
		HealthTimeout:     cfg.healthTimeout,
		RateBuckets:       cfg.rateBuckets,
		PartnerGuessLimit: cfg.partnerGuessLimit,
	})
	return &env{e: e, store: store, redis: redisOpt, proxy: proxy, logs: logs}
}

// request is one HTTP call to the handler.
type request struct {
	method  string
	path    string
	body    string
	user    string // with password: Basic credentials; both empty: none
	pass    string
	header  map[string]string
	chunked bool // hide the body's length, as a chunked upload does
}

// answer is what came back; the JSON fields of every Kiln answer shape are
// decoded side by side.
type answer struct {
	status int
	header http.Header
	raw    string
	ID     string            `json:"id"`
	Msg    string            `json:"message"`
	Config map[string]string `json:"config"`
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// heroku is a request with Heroku's headers and the first password.
func heroku(method, path, body string) request {
	return request{
		method: method, path: path, body: body, user: testAddonID, pass: password1,
		header: map[string]string{
			"Accept":       "application/vnd.heroku-addons+json; version=3",
			"Content-Type": "application/json",
		},
	}
}

func serve(tb testing.TB, h http.Handler, r request) answer {
	tb.Helper()
	var body io.Reader = http.NoBody
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req := httptest.NewRequest(r.method, r.path, body)
	if r.chunked {
		req.ContentLength = -1
		req.Body = io.NopCloser(strings.NewReader(r.body))
	}
	if r.user != "" || r.pass != "" {
		req.SetBasicAuth(r.user, r.pass)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	a := answer{status: rec.Code, header: rec.Header(), raw: rec.Body.String()}
	if a.raw != "" {
		if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
			tb.Fatalf("%s %s: answer is not JSON: %v: %q", r.method, r.path, err, a.raw)
		}
	}
	return a
}

// provisionBody is a valid provision request for id, as Heroku sends it.
func provisionBody(id string) string {
	return `{
		"uuid": "` + id + `",
		"name": "acme-inc-primary-database",
		"plan": "test",
		"region": "amazon-web-services::us-east-1",
		"callback_url": "https://api.heroku.com/addons/` + id + `",
		"options": {"foo": "bar", "flag": "true"},
		"oauth_grant": {"code": "grant-code-` + id + `", "expires_at": "2016-03-03T18:01:31-0800", "type": "authorization_code"},
		"log_input_url": "https://token:t.secret-log-input@1.us.logplex.io/logs",
		"log_drain_token": "d.secret-drain-token"
	}`
}

// tasksFor returns the asynq tasks queued for an add-on, in every state a
// task can wait in (no worker runs in these tests).
func tasksFor(tb testing.TB, r asynq.RedisConnOpt, addonID string) []*asynq.TaskInfo {
	tb.Helper()
	in := asynq.NewInspector(r)
	defer in.Close()
	queues, err := in.Queues()
	if err != nil {
		tb.Fatalf("list queues: %v", err)
	}
	var out []*asynq.TaskInfo
	for _, q := range queues {
		for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){
			in.ListPendingTasks, in.ListActiveTasks, in.ListScheduledTasks, in.ListRetryTasks, in.ListArchivedTasks,
		} {
			tasks, err := list(q, asynq.PageSize(1000))
			if err != nil {
				tb.Fatalf("list tasks of queue %s: %v", q, err)
			}
			for _, t := range tasks {
				if bytes.Contains(t.Payload, []byte(addonID)) {
					out = append(out, t)
				}
			}
		}
	}
	return out
}

// rows counts the add-on's rows in the addons table.
func (e *env) rows(tb testing.TB, id string) int64 {
	tb.Helper()
	var n int64
	if err := e.store.Gorm().Table("addons").Where("id = ?", id).Count(&n).Error; err != nil {
		tb.Fatalf("count rows: %v", err)
	}
	return n
}

// stored returns the add-on or nil when the store has none.
func (e *env) stored(tb testing.TB, id string) *addon.Addon {
	tb.Helper()
	a, err := e.store.Get(context.Background(), addon.ID(id))
	if addon.ErrorCode(err) == addon.ENOTFOUND {
		return nil
	}
	if err != nil {
		tb.Fatalf("get %s: %v", id, err)
	}
	return a
}

// syncBuffer is a log sink safe for concurrent requests.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lines returns the log lines containing every one of subs.
func (s *syncBuffer) lines(subs ...string) []string {
	var out []string
	for _, l := range strings.Split(s.String(), "\n") {
		ok := l != ""
		for _, sub := range subs {
			ok = ok && strings.Contains(l, sub)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// tcpProxy forwards TCP connections to a target until cut, so a test can
// make a real Postgres unreachable for a store that is already open.
type tcpProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	cut    bool
	wg     sync.WaitGroup
}

func startProxy(tb testing.TB, target string) *tcpProxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target}
	p.wg.Go(p.accept)
	tb.Cleanup(p.Cut)
	return p
}

func (p *tcpProxy) Addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			up.Close()
			return
		}
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		p.wg.Go(func() { io.Copy(up, c); up.Close() })
		p.wg.Go(func() { io.Copy(c, up); c.Close() })
	}
}

// Cut stops listening and drops every forwarded connection: from now on the
// database is unreachable (connection refused).
func (p *tcpProxy) Cut() {
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		return
	}
	p.cut = true
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
