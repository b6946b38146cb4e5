package config

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func full() map[string]string {
	return map[string]string{
		"PORT":                       "5000",
		"DATABASE_URL":               "postgres://u:p@localhost:5432/kiln",
		"REDIS_URL":                  "redis://localhost:6379",
		"ADDON_ID":                   "fast-db",
		"ADDON_PASSWORD":             "pw1, pw2",
		"ADDON_SSO_SALT":             "salt",
		"HEROKU_OAUTH_CLIENT_SECRET": "secret",
		"ENCRYPTION_KEY":             "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		"ADMIN_PASSWORD":             "config-test-admin-password-0123456789",
	}
}

func TestLoad(t *testing.T) {
	c, err := Load(env(full()), Web)
	if err != nil {
		t.Fatal(err)
	}
	if c.ConfigPrefix != "FAST_DB" {
		t.Errorf("prefix = %q, want FAST_DB", c.ConfigPrefix)
	}
	if len(c.AddonPasswords) != 2 || c.AddonPasswords[1] != "pw2" {
		t.Errorf("passwords = %q", c.AddonPasswords)
	}
	if c.ProvisionDeadline != 11*time.Hour || c.ResourceDriver != "account" || c.HerokuAPIURL != "https://api.heroku.com" || c.HerokuIDURL != "https://id.heroku.com" {
		t.Errorf("defaults wrong: %+v", c)
	}
}

// TestBudgetDefaults: one web plus one worker stay within Heroku's
// 20-connection plans with the defaults (docs/deploy.md), and the settings
// override them.
func TestBudgetDefaults(t *testing.T) {
	web, err := Load(env(full()), Web)
	if err != nil {
		t.Fatal(err)
	}
	worker, err := Load(env(full()), Worker)
	if err != nil {
		t.Fatal(err)
	}
	const subscriptions = 2 // one per asynq server in the worker
	if pg := web.DatabasePool + worker.DatabasePool; pg > 18 {
		t.Errorf("default Postgres budget %d + %d leaves no room for the release phase", web.DatabasePool, worker.DatabasePool)
	}
	if r := web.RedisPool + worker.RedisPool + subscriptions; r > 20 {
		t.Errorf("default Redis budget %d exceeds 20", r)
	}
	if worker.Concurrency != DefaultConcurrency || worker.GrantConcurrency != DefaultGrantConcurrency || worker.InlineProvisions != DefaultGrantConcurrency/2 || worker.KeeperConcurrency != DefaultKeeperConcurrency || worker.LeaseTTL != 30*time.Second || worker.OutboxInterval != 5*time.Second {
		t.Errorf("defaults: %+v", worker)
	}
	m := full()
	m["DATABASE_POOL_SIZE"], m["REDIS_POOL_SIZE"], m["WORKER_CONCURRENCY"], m["GRANT_CONCURRENCY"], m["KEEPER_CONCURRENCY"], m["LEASE_TTL"] = "3", "4", "7", "9", "2", "10s"
	c, err := Load(env(m), Worker)
	if err != nil {
		t.Fatal(err)
	}
	if c.DatabasePool != 3 || c.RedisPool != 4 || c.Concurrency != 7 || c.GrantConcurrency != 9 || c.KeeperConcurrency != 2 || c.InlineProvisions != 4 || c.LeaseTTL != 10*time.Second {
		t.Errorf("overrides not applied: %+v", c)
	}
	for _, n := range []int{0, 9} {
		m["INLINE_PROVISIONS"] = fmt.Sprint(n)
		if c, err := Load(env(m), Worker); err != nil || c.InlineProvisions != n {
			t.Errorf("INLINE_PROVISIONS=%d: got %d, %v", n, c.InlineProvisions, err)
		}
	}
}

// TestAdminPasswordLength: 32 characters start, 31 do not, and the release
// process (which serves nothing) does not care.
func TestAdminPasswordLength(t *testing.T) {
	m := full()
	m["ADMIN_PASSWORD"] = strings.Repeat("p", MinAdminPasswordLen)
	if _, err := Load(env(m), Web); err != nil {
		t.Errorf("a %d-character password was refused: %v", MinAdminPasswordLen, err)
	}
	m["ADMIN_PASSWORD"] = "short"
	if _, err := Load(env(m), Release); err != nil {
		t.Errorf("release refused a short admin password it never uses: %v", err)
	}
}

// TestLoadSentinel: REDIS_URL may name a Sentinel group.
func TestLoadSentinel(t *testing.T) {
	m := full()
	m["REDIS_URL"] = "redis+sentinel://:pw@s1:26379,s2:26379,s3:26379/kiln/2"
	c, err := Load(env(m), Worker)
	if err != nil {
		t.Fatal(err)
	}
	if c.RedisURL != m["REDIS_URL"] {
		t.Errorf("RedisURL = %q", c.RedisURL)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		process Process
		change  map[string]string
		want    []string // every fragment must appear in the error
	}{
		{"everything missing", Web, nil, []string{"PORT", "DATABASE_URL", "REDIS_URL", "ADDON_ID", "ADDON_PASSWORD", "ADDON_SSO_SALT", "HEROKU_OAUTH_CLIENT_SECRET", "ENCRYPTION_KEY", "ADMIN_PASSWORD"}},
		{"worker needs no port", Worker, map[string]string{"PORT": "", "REDIS_URL": ""}, []string{"REDIS_URL"}},
		{"release needs only the database", Release, map[string]string{"DATABASE_URL": ""}, []string{"DATABASE_URL"}},
		{"malformed values", Web, map[string]string{"PORT": "http", "REDIS_URL": "http://x", "ENCRYPTION_KEY": "short", "PROVISION_DEADLINE": "13h", "HEROKU_API_URL": "ftp://x"}, []string{"PORT is malformed", "REDIS_URL is malformed", "ENCRYPTION_KEY is malformed", "PROVISION_DEADLINE is malformed", "HEROKU_API_URL is malformed"}},
		{"sentinel group without a master name", Worker, map[string]string{"REDIS_URL": "redis+sentinel://s1:26379,s2:26379"}, []string{"REDIS_URL is malformed", "no master name"}},
		{"bad prefix", Web, map[string]string{"ADDON_CONFIG_PREFIX": "lower"}, []string{`ADDON_CONFIG_PREFIX is malformed: "lower" cannot start Heroku config var names (^[A-Z][0-9A-Z_]+$)`}},
		{"prefix starting with a digit", Web, map[string]string{"ADDON_CONFIG_PREFIX": "9DB"}, []string{`"9DB" cannot start`}},
		{"default prefix of a bad id", Web, map[string]string{"ADDON_ID": "9-db"}, []string{`"9_DB" cannot start`}},
		{"postgres driver needs its database", Worker, map[string]string{"RESOURCE_DRIVER": "postgres"}, []string{"RESOURCE_DATABASE_URL is required"}},
		{"short admin password (web)", Web, map[string]string{"ADMIN_PASSWORD": "admin"}, []string{"ADMIN_PASSWORD is malformed: it is 5 characters long; at least 32 are required"}},
		{"short admin password (worker)", Worker, map[string]string{"ADMIN_PASSWORD": strings.Repeat("x", 31)}, []string{"ADMIN_PASSWORD is malformed: it is 31 characters long"}},
		{"unknown driver", Worker, map[string]string{"RESOURCE_DRIVER": "mysql"}, []string{`RESOURCE_DRIVER is malformed: unknown driver "mysql" (want account, postgres or http)`}},
		{"bad budgets", Worker, map[string]string{"DATABASE_POOL_SIZE": "0", "REDIS_POOL_SIZE": "x", "GRANT_CONCURRENCY": "-1", "KEEPER_CONCURRENCY": "0", "LEASE_TTL": "1s", "OUTBOX_INTERVAL": "soon"}, []string{"DATABASE_POOL_SIZE is malformed", "REDIS_POOL_SIZE is malformed", "GRANT_CONCURRENCY is malformed", "KEEPER_CONCURRENCY is malformed", "LEASE_TTL is malformed", "OUTBOX_INTERVAL is malformed"}},
		{"inline provisions beyond the grant slots", Worker, map[string]string{"GRANT_CONCURRENCY": "10", "INLINE_PROVISIONS": "11"}, []string{"INLINE_PROVISIONS is malformed: want a number from 0 to GRANT_CONCURRENCY (10)"}},
		{"negative inline provisions", Worker, map[string]string{"INLINE_PROVISIONS": "-1"}, []string{"INLINE_PROVISIONS is malformed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := full()
			if tt.change == nil {
				m = map[string]string{}
			}
			for k, v := range tt.change {
				m[k] = v
			}
			_, err := Load(env(m), tt.process)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not name %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestProcessNames: the names logs and errors give the processes are the
// Procfile's.
func TestProcessNames(t *testing.T) {
	for p, want := range map[Process]string{Release: "release", Web: "web", Worker: "worker", Process(9): "Process(9)"} {
		if got := p.String(); got != want {
			t.Errorf("Process(%d).String() = %q, want %q", int(p), got, want)
		}
	}
}
