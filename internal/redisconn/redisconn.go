// Package redisconn turns REDIS_URL into Redis clients: one server
// (redis://, rediss://, as Heroku sets it) or a Sentinel group
// (redis-sentinel://, redis+sentinel://, rediss+sentinel://), as partners
// outside Heroku run a highly available Redis. It is the one place that
// knows the URL forms, so asynq and every other Redis user in Kiln (rate
// limits, health checks, queue metrics) follow the same primary through a
// failover.
//
// The Sentinel form is the redis+sentinel:// convention of redis-py's
// Redis-Sentinel-Url, RedisVL and Prefect, with asynq's redis-sentinel://
// scheme and ?master= option also accepted:
//
//	redis+sentinel://[[user]:password@]host1[:port][,host2[:port]...]/master-name[/db][?option=value...]
//
// Sentinel ports default to 26379. The user and password authenticate to
// the Redis servers (what the data needs); options sentinel_username and
// sentinel_password authenticate to the Sentinels when they require it. The
// master name may instead be given as ?master= (asynq) or ?master_name=
// (go-redis), and the database as ?db=. rediss+sentinel:// (or
// rediss-sentinel://) speaks TLS to both the Sentinels and the servers.
package redisconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// DefaultSentinelPort is the port Sentinels listen on unless the URL says.
const DefaultSentinelPort = "26379"

// Conn is where Kiln's Redis is. Exactly one of its option sets is used.
type Conn struct {
	single   *redis.Options
	failover *redis.FailoverOptions
}

// sentinelSchemes maps each accepted Sentinel scheme to whether it means TLS.
var sentinelSchemes = map[string]bool{
	"redis-sentinel":   false,
	"redis+sentinel":   false,
	"rediss-sentinel":  true,
	"rediss+sentinel":  true,
	"redis-sentinels":  true, // a spelling some tools use for TLS
	"redis+sentinels":  true,
	"rediss+sentinels": true,
}

// IsSentinel reports whether a URL names a Sentinel group (by its scheme).
func IsSentinel(raw string) bool {
	scheme, _, ok := strings.Cut(raw, "://")
	_, known := sentinelSchemes[strings.ToLower(scheme)]
	return ok && known
}

// Parse reads REDIS_URL. tlsVerify turns certificate verification on for
// TLS URLs (Heroku's Redis presents self-signed certificates, so it is off
// unless REDIS_TLS_VERIFY=true). Errors never repeat the URL: it may hold a
// password.
func Parse(raw string, tlsVerify bool) (*Conn, error) {
	if IsSentinel(raw) {
		f, err := parseSentinel(raw)
		if err != nil {
			return nil, err
		}
		if f.TLSConfig != nil {
			f.TLSConfig.InsecureSkipVerify = !tlsVerify //nolint:gosec // see REDIS_TLS_VERIFY.
		}
		return &Conn{failover: f}, nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
		return nil, errors.New("want redis://, rediss:// or a Sentinel URL (redis+sentinel://host:26379,.../master-name)")
	}
	opt, err := redis.ParseURL(raw)
	if err != nil {
		return nil, scrub(err, raw)
	}
	if opt.TLSConfig != nil {
		opt.TLSConfig.InsecureSkipVerify = !tlsVerify //nolint:gosec // see REDIS_TLS_VERIFY.
		opt.TLSConfig.MinVersion = tls.VersionTLS12
	}
	return &Conn{single: opt}, nil
}

func parseSentinel(raw string) (*redis.FailoverOptions, error) {
	scheme, rest, _ := strings.Cut(raw, "://")
	useTLS := sentinelSchemes[strings.ToLower(scheme)]
	rest, query, _ := strings.Cut(rest, "?")
	authority, path, _ := strings.Cut(rest, "/")
	f := &redis.FailoverOptions{}
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		// Let net/url decode the user information's escapes.
		u, err := url.Parse("x://" + authority[:at+1] + "h")
		if err != nil || u.User == nil {
			return nil, errors.New("Sentinel URL: malformed user information")
		}
		f.Username = u.User.Username()
		f.Password, _ = u.User.Password()
		authority = authority[at+1:]
	}
	for _, h := range strings.Split(authority, ",") {
		if h == "" {
			continue
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			host, port = strings.Trim(h, "[]"), DefaultSentinelPort
		}
		if host == "" {
			return nil, fmt.Errorf("Sentinel URL: malformed Sentinel address %q", h)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("Sentinel URL: malformed port in %q", h)
		}
		f.SentinelAddrs = append(f.SentinelAddrs, net.JoinHostPort(host, port))
	}
	if len(f.SentinelAddrs) == 0 {
		return nil, errors.New("Sentinel URL: no Sentinel addresses")
	}
	var segs []string
	for _, s := range strings.Split(path, "/") {
		if s != "" {
			s, err := url.PathUnescape(s)
			if err != nil {
				return nil, errors.New("Sentinel URL: malformed path")
			}
			segs = append(segs, s)
		}
	}
	if len(segs) > 2 {
		return nil, errors.New("Sentinel URL: path must be /master-name[/db]")
	}
	db := ""
	if len(segs) > 0 {
		f.MasterName = segs[0]
	}
	if len(segs) > 1 {
		db = segs[1]
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, errors.New("Sentinel URL: malformed query")
	}
	for k, v := range q {
		val := v[len(v)-1]
		switch k {
		case "master", "master_name", "service_name":
			f.MasterName = val
		case "db":
			db = val
		case "sentinel_username":
			f.SentinelUsername = val
		case "sentinel_password":
			f.SentinelPassword = val
		default:
			return nil, fmt.Errorf("Sentinel URL: unknown option %q (known: master, db, sentinel_username, sentinel_password)", k)
		}
	}
	if f.MasterName == "" {
		return nil, errors.New("Sentinel URL: no master name (redis+sentinel://host:26379/<master-name>)")
	}
	if db != "" {
		n, err := strconv.Atoi(db)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("Sentinel URL: malformed database number %q", db)
		}
		f.DB = n
	}
	if useTLS {
		f.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return f, nil
}

// scrub removes the URL (and so any password) from a parse error.
func scrub(err error, raw string) error {
	return errors.New(strings.ReplaceAll(err.Error(), raw, "REDIS_URL"))
}

// Sentinel reports whether Kiln reaches Redis through Sentinels.
func (c *Conn) Sentinel() bool { return c.failover != nil }

// Pooled builds the one client a process shares (asynq's servers, client
// and inspectors through jobs.SharedRedis, rate limits, health), holding at
// most pool connections: pipelines run on the same pool and MaxActiveConns
// makes the size a hard cap. Subscriptions are outside it (go-redis gives
// each its own connection): asynq's servers hold one each. It is the only
// way Kiln builds a Redis client, so no client gets go-redis's default pool
// of 10 per CPU. Over Sentinel it is the failover client, which also keeps
// two connections to a Sentinel (one for its questions, one subscribed to
// its notice of a new primary); they count against the Sentinels' limits.
func (c *Conn) Pooled(pool int) *redis.Client {
	if c.failover != nil {
		f := *c.failover
		f.PoolSize, f.MaxActiveConns, f.MaxIdleConns, f.MinIdleConns, f.PipelinePoolSize = pool, pool, pool, 0, -1
		return redis.NewFailoverClient(&f)
	}
	o := *c.single
	o.PoolSize, o.MaxActiveConns, o.MaxIdleConns, o.MinIdleConns, o.PipelinePoolSize = pool, pool, pool, 0, -1
	return redis.NewClient(&o)
}

// String describes the connection for logs, without passwords.
func (c *Conn) String() string {
	if f := c.failover; f != nil {
		return fmt.Sprintf("sentinel master=%s sentinels=%s db=%d tls=%t", f.MasterName, strings.Join(f.SentinelAddrs, ","), f.DB, f.TLSConfig != nil)
	}
	return fmt.Sprintf("redis addr=%s db=%d tls=%t", c.single.Addr, c.single.DB, c.single.TLSConfig != nil)
}

// Logger routes go-redis's own messages (Sentinel discovery, a new primary
// after a failover, dropped pool connections) into the process's logfmt
// log instead of bare lines on stderr. go-redis keeps one logger per
// process, so cmd/* call it once at start.
func Logger(log *slog.Logger) {
	redis.SetLogger(goRedisLog{log.With("component", "go-redis")})
}

type goRedisLog struct{ log *slog.Logger }

func (l goRedisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.InfoContext(ctx, fmt.Sprintf(format, v...))
}
