// Package config reads Kiln's settings from the environment, the Heroku way
// (twelve-factor): every variable of the runtime contract, validated at once,
// so a misconfigured dyno stops at start-up with one message naming every
// missing or malformed variable instead of failing on the first customer call.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/drivers/account"
	httpdriver "github.com/kiln-dev/kiln/internal/drivers/http"
	pgdriver "github.com/kiln-dev/kiln/internal/drivers/postgres"
	"github.com/kiln-dev/kiln/internal/heroku"
	"github.com/kiln-dev/kiln/internal/jobs"
	"github.com/kiln-dev/kiln/internal/redisconn"
)

// Process says which Kiln process is loading its configuration, because each
// requires a different subset of the environment.
type Process int

// The processes of the Procfile.
const (
	Release Process = iota // applies migrations; needs only the database
	Web
	Worker
)

// String is the process's name in the Procfile, as its logs and errors
// name it.
func (p Process) String() string {
	switch p {
	case Release:
		return "release"
	case Web:
		return "web"
	case Worker:
		return "worker"
	}
	return fmt.Sprintf("Process(%d)", int(p))
}

// Config is the validated environment.
type Config struct {
	Port              int
	DatabaseURL       string
	RedisURL          string
	RedisTLSVerify    bool
	AddonID           string
	AddonPasswords    []string
	SSOSalt           string
	ConfigPrefix      string
	OAuthClientSecret string
	HerokuAPIURL      string
	HerokuIDURL       string
	EncryptionKeys    [][]byte
	AdminPassword     string
	ProvisionDeadline time.Duration
	ResourceDriver    string
	ResourceDBURL     string
	ResourcePublic    string // RESOURCE_PUBLIC_HOST: host[:port] customers connect to
	PlansFile         string // RESOURCE_PLANS_FILE: a plan catalog replacing the driver's default
	PublicURL         string
	Concurrency       int           // WORKER_CONCURRENCY: default/cleanup jobs at once
	GrantConcurrency  int           // GRANT_CONCURRENCY: grant exchanges at once
	InlineProvisions  int           // INLINE_PROVISIONS: grant jobs that may go on to provision at once
	KeeperConcurrency int           // KEEPER_CONCURRENCY: the keeper's best-effort jobs (log lines, syncs, webhooks) at once
	DatabasePool      int           // DATABASE_POOL_SIZE: Postgres connections this process may open
	RedisPool         int           // REDIS_POOL_SIZE: Redis connections this process may open (plus one per asynq server for subscriptions)
	LeaseTTL          time.Duration // LEASE_TTL: how long an add-on writer's claim lasts unless renewed
	OutboxInterval    time.Duration // OUTBOX_INTERVAL: how often accepted work whose enqueue failed is enqueued
	ReconcileEvery    time.Duration // RECONCILE_INTERVAL: how often the reconciler sweeps
	ReconcileAfter    time.Duration // RECONCILE_AFTER: how long accepted work may sit untouched before it is re-enqueued
	LogLevel          string

	// Keeping in step with Heroku (issue 14).
	CredentialGrace  time.Duration // CREDENTIAL_GRACE: how long rotated-out credentials keep working
	SyncInterval     time.Duration // HEROKU_SYNC_INTERVAL: how often each live add-on is compared with GET /addons/{id}
	Webhooks         bool          // HEROKU_WEBHOOKS: subscribe add-on webhooks (default on)
	AsyncDeprovision bool          // ASYNC_DEPROVISION: DELETE answers 202 and Kiln calls actions/deprovision

	// ResourceDriverDelay (RESOURCE_DRIVER_DELAY) slows every driver call by
	// this much, for benchmarks and failure drills only: it stands in for a
	// slow real resource (a database that takes a while to create).
	ResourceDriverDelay time.Duration
	// WorkerDebugAddr (WORKER_DEBUG_ADDR) is where the worker serves pprof
	// behind the admin password; empty means no listener. A bare port binds
	// 127.0.0.1 only.
	WorkerDebugAddr string

	// The http driver's partner service: RESOURCE_HTTP_URL, the key that
	// signs Kiln's requests (RESOURCE_HTTP_SECRET) and the per-request
	// timeout (RESOURCE_HTTP_TIMEOUT, default 10 s).
	HTTPURL     string
	HTTPSecret  string
	HTTPTimeout time.Duration
}

// Drivers are the resource drivers RESOURCE_DRIVER may name, by each
// driver's own Name, the default first; the configuration, its messages and
// kiln-heroku's manifest all follow this one list.
var Drivers = []string{account.Name, pgdriver.Name, httpdriver.Name}

// DriverChoice lists Drivers for a message: "account, postgres or http".
func DriverChoice() string {
	return strings.Join(Drivers[:len(Drivers)-1], ", ") + " or " + Drivers[len(Drivers)-1]
}

// MinAdminPasswordLen is the shortest ADMIN_PASSWORD Kiln starts with. The
// password opens the operator pages, the queue dashboard, metrics and the
// profilers; guessing is rate limited per address, but an attacker with
// many addresses is only stopped by a password too long to guess.
const MinAdminPasswordLen = 32

// Load reads and validates the environment for process p. The error lists
// every problem, one per line.
func Load(getenv func(string) string, p Process) (*Config, error) {
	var errs []error
	get := func(name string, required bool) string {
		v := strings.TrimSpace(getenv(name))
		if v == "" && required {
			errs = append(errs, fmt.Errorf("%s is required but not set", name))
		}
		return v
	}
	bad := func(name, why string) { errs = append(errs, fmt.Errorf("%s is malformed: %s", name, why)) }

	c := &Config{}
	app := p == Web || p == Worker

	c.DatabaseURL = get("DATABASE_URL", true)
	if c.DatabaseURL != "" {
		if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			bad("DATABASE_URL", "want postgres://user:password@host:port/db")
		}
	}
	if p == Web {
		if v := get("PORT", true); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 || n > 65535 {
				bad("PORT", "want a port number")
			}
			c.Port = n
		}
	}
	if app {
		c.RedisURL = get("REDIS_URL", true)
		if c.RedisURL != "" {
			if _, err := redisconn.Parse(c.RedisURL, false); err != nil {
				bad("REDIS_URL", err.Error())
			}
		}
		if v := get("REDIS_TLS_VERIFY", false); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				bad("REDIS_TLS_VERIFY", "want true or false")
			}
			c.RedisTLSVerify = b
		}
		c.AddonID = get("ADDON_ID", true)
		if pw := get("ADDON_PASSWORD", true); pw != "" {
			for _, s := range strings.Split(pw, ",") {
				if s = strings.TrimSpace(s); s != "" {
					c.AddonPasswords = append(c.AddonPasswords, s)
				}
			}
			if len(c.AddonPasswords) == 0 {
				bad("ADDON_PASSWORD", "no password in the list")
			}
		}
		c.SSOSalt = get("ADDON_SSO_SALT", true)
		c.ConfigPrefix = get("ADDON_CONFIG_PREFIX", false)
		if c.ConfigPrefix == "" && c.AddonID != "" {
			c.ConfigPrefix = addon.DefaultPrefix(c.AddonID)
		}
		if c.ConfigPrefix != "" && !addon.ValidPrefix(c.ConfigPrefix) {
			bad("ADDON_CONFIG_PREFIX", fmt.Sprintf("%q cannot start Heroku config var names (^[A-Z][0-9A-Z_]+$)", c.ConfigPrefix))
		}
		c.OAuthClientSecret = get("HEROKU_OAUTH_CLIENT_SECRET", true)
		c.HerokuAPIURL = urlOr(get("HEROKU_API_URL", false), heroku.DefaultAPIURL, "HEROKU_API_URL", bad)
		c.HerokuIDURL = urlOr(get("HEROKU_ID_URL", false), heroku.DefaultIDURL, "HEROKU_ID_URL", bad)
		if v := get("ENCRYPTION_KEY", true); v != "" {
			for i, s := range strings.Split(v, ",") {
				k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
				if err != nil || len(k) != 32 {
					bad("ENCRYPTION_KEY", fmt.Sprintf("key %d is not base64 of 32 bytes (make one with: openssl rand -base64 32)", i+1))
					continue
				}
				c.EncryptionKeys = append(c.EncryptionKeys, k)
			}
		}
		c.AdminPassword = get("ADMIN_PASSWORD", true)
		if n := len([]rune(c.AdminPassword)); n > 0 && n < MinAdminPasswordLen {
			bad("ADMIN_PASSWORD", fmt.Sprintf("it is %d characters long; at least %d are required, since it opens every operator page "+
				"(make one with: openssl rand -hex 24)", n, MinAdminPasswordLen))
		}
		c.ProvisionDeadline = 11 * time.Hour
		if v := get("PROVISION_DEADLINE", false); v != "" {
			d, err := time.ParseDuration(v)
			switch {
			case err != nil:
				bad("PROVISION_DEADLINE", "want a Go duration such as 11h")
			case d <= 0 || d >= 12*time.Hour:
				bad("PROVISION_DEADLINE", "must be positive and under Heroku's 12h limit")
			default:
				c.ProvisionDeadline = d
			}
		}
		c.ResourceDriver = get("RESOURCE_DRIVER", false)
		if c.ResourceDriver == "" {
			c.ResourceDriver = Drivers[0]
		}
		c.ResourceDBURL = get("RESOURCE_DATABASE_URL", c.ResourceDriver == pgdriver.Name)
		c.ResourcePublic = get("RESOURCE_PUBLIC_HOST", false)
		c.PlansFile = get("RESOURCE_PLANS_FILE", false)
		if v := get("RESOURCE_DRIVER_DELAY", false); v != "" {
			c.ResourceDriverDelay = duration(v, 0, "RESOURCE_DRIVER_DELAY", bad)
		}
		if !slices.Contains(Drivers, c.ResourceDriver) {
			bad("RESOURCE_DRIVER", fmt.Sprintf("unknown driver %q (want %s)", c.ResourceDriver, DriverChoice()))
		}
		loadHTTPDriver(c, get, bad)
		c.PublicURL = get("PUBLIC_URL", false)
		if c.PublicURL == "" {
			if app := getenv("HEROKU_APP_NAME"); app != "" {
				c.PublicURL = "https://" + app + ".herokuapp.com"
			} else {
				port := getenv("PORT")
				if port == "" {
					port = "5000"
				}
				c.PublicURL = "http://localhost:" + port
			}
		} else if u, err := url.Parse(c.PublicURL); err != nil || u.Host == "" {
			bad("PUBLIC_URL", "want an absolute URL such as https://kiln.example.com")
		}
		c.CredentialGrace = duration(get("CREDENTIAL_GRACE", false), time.Hour, "CREDENTIAL_GRACE", bad)
		c.SyncInterval = duration(get("HEROKU_SYNC_INTERVAL", false), time.Hour, "HEROKU_SYNC_INTERVAL", bad)
		c.Webhooks = boolean(get("HEROKU_WEBHOOKS", false), true, "HEROKU_WEBHOOKS", bad)
		c.AsyncDeprovision = boolean(get("ASYNC_DEPROVISION", false), false, "ASYNC_DEPROVISION", bad)
		c.Concurrency = count(get("WORKER_CONCURRENCY", false), DefaultConcurrency, "WORKER_CONCURRENCY", bad)
		c.GrantConcurrency = count(get("GRANT_CONCURRENCY", false), DefaultGrantConcurrency, "GRANT_CONCURRENCY", bad)
		c.InlineProvisions = inlineProvisions(get("INLINE_PROVISIONS", false), c.GrantConcurrency, bad)
		c.KeeperConcurrency = count(get("KEEPER_CONCURRENCY", false), DefaultKeeperConcurrency, "KEEPER_CONCURRENCY", bad)
		dbPool, redisPool := DefaultWebDatabasePool, DefaultWebRedisPool
		if p == Worker {
			dbPool, redisPool = DefaultWorkerDatabasePool, DefaultWorkerRedisPool
		}
		c.DatabasePool = count(get("DATABASE_POOL_SIZE", false), dbPool, "DATABASE_POOL_SIZE", bad)
		c.RedisPool = count(get("REDIS_POOL_SIZE", false), redisPool, "REDIS_POOL_SIZE", bad)
		c.LeaseTTL = duration(get("LEASE_TTL", false), 30*time.Second, "LEASE_TTL", bad)
		if c.LeaseTTL < 3*time.Second {
			bad("LEASE_TTL", "want at least 3s (the lease is renewed every third of it)")
		}
	}
	if p == Worker {
		c.WorkerDebugAddr = debugAddr(get("WORKER_DEBUG_ADDR", false), "WORKER_DEBUG_ADDR", bad)
		c.ReconcileEvery = duration(get("RECONCILE_INTERVAL", false), 30*time.Second, "RECONCILE_INTERVAL", bad)
		c.ReconcileAfter = duration(get("RECONCILE_AFTER", false), 2*time.Minute, "RECONCILE_AFTER", bad)
		c.OutboxInterval = duration(get("OUTBOX_INTERVAL", false), 5*time.Second, "OUTBOX_INTERVAL", bad)
	}
	c.LogLevel = get("LOG_LEVEL", false)
	switch strings.ToLower(c.LogLevel) {
	case "", "info", "debug", "warn", "error":
	default:
		bad("LOG_LEVEL", "want debug, info, warn or error")
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("configuration: %w", errors.Join(errs...))
	}
	return c, nil
}

// Connection and concurrency defaults. Heroku's smallest Redis and Postgres
// plans allow 20 connections each for every dyno together; with these, one
// web plus one worker dyno open at most 6 + 8 = 14 Postgres connections
// (leaving room for the release phase and a one-off dyno) and 6 + 8 + 3 = 17
// Redis connections (the worker's three asynq servers hold one subscription
// each), whatever GOMAXPROCS is. docs/deploy.md shows how to size them for
// more dynos and bigger plans.
const (
	DefaultWebDatabasePool    = 6
	DefaultWorkerDatabasePool = 8
	DefaultWebRedisPool       = 6
	DefaultWorkerRedisPool    = 8
	DefaultConcurrency        = jobs.DefaultConcurrency
	DefaultGrantConcurrency   = jobs.DefaultGrantConcurrency
	DefaultKeeperConcurrency  = jobs.DefaultKeeperConcurrency
)

// count parses a positive integer setting.
func count(v string, def int, name string, bad func(string, string)) int {
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		bad(name, "want a positive number")
		return def
	}
	return n
}

// inlineProvisions reads INLINE_PROVISIONS: from 0 (grant jobs never go
// on to provision) to GRANT_CONCURRENCY, by default half of it, so half the
// grant slots always stay free for exchanges (addon.Options.InlineProvisions).
func inlineProvisions(v string, grants int, bad func(string, string)) int {
	if v == "" {
		return grants / 2
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > grants {
		bad("INLINE_PROVISIONS", fmt.Sprintf("want a number from 0 to GRANT_CONCURRENCY (%d)", grants))
		return grants / 2
	}
	return n
}

func duration(v string, def time.Duration, name string, bad func(string, string)) time.Duration {
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		bad(name, "want a positive Go duration such as 30s")
		return def
	}
	return d
}

func boolean(v string, def bool, name string, bad func(string, string)) bool {
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		bad(name, "want true or false")
		return def
	}
	return b
}

func urlOr(v, def, name string, bad func(string, string)) string {
	if v == "" {
		return def
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad(name, "want an http(s) URL")
	}
	return strings.TrimRight(v, "/")
}

// debugAddr turns WORKER_DEBUG_ADDR into a listen address. A bare port
// ("6060" or ":6060") binds the loopback interface only: profiles reveal
// internals, so listening on every interface must be asked for by name
// ("0.0.0.0:6060").
func debugAddr(v, name string, bad func(string, string)) string {
	if v == "" {
		return ""
	}
	if !strings.Contains(v, ":") {
		v = ":" + v
	}
	host, port, err := net.SplitHostPort(v)
	n, perr := strconv.Atoi(port)
	if err != nil || perr != nil || n <= 0 || n > 65535 {
		bad(name, "want a port or host:port such as 127.0.0.1:6060")
		return ""
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
