package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"
)

// endpoint is the host and port a service URL names.
type endpoint struct {
	Host string
	Port int
}

func (e endpoint) String() string { return net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) }

// endpointOf reads the host and port of a service URL, with the service's
// standard port when the URL has none.
func endpointOf(raw string, defaultPort int) (endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return endpoint{}, fmt.Errorf("%q is not a service URL", redactURL(raw))
	}
	e := endpoint{Host: u.Hostname(), Port: defaultPort}
	if p := u.Port(); p != "" {
		if e.Port, err = strconv.Atoi(p); err != nil {
			return endpoint{}, fmt.Errorf("%q has a bad port", redactURL(raw))
		}
	}
	return e, nil
}

// Local reports whether kiln-dev may start a server for this endpoint: it
// only ever starts servers on this machine's loopback interface.
func (e endpoint) Local() bool {
	if e.Host == "localhost" {
		return true
	}
	ip := net.ParseIP(e.Host)
	return ip != nil && ip.IsLoopback()
}

// Listening reports whether something accepts TCP connections there.
func (e endpoint) Listening(ctx context.Context) bool {
	d := net.Dialer{Timeout: 500 * time.Millisecond}
	c, err := d.DialContext(ctx, "tcp", e.String())
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// action is what kiln-dev does about a service.
type action int

const (
	reuse       action = iota // a server is already there: use it, leave it running
	start                     // nothing there and it is local: start our own
	unreachable               // nothing there and it is not ours to start
)

// decide picks the action for a service endpoint.
func decide(ctx context.Context, e endpoint) action {
	switch {
	case e.Listening(ctx):
		return reuse
	case e.Local():
		return start
	default:
		return unreachable
	}
}

// installHint says how to get a missing server, for the platforms Kiln's
// developers use.
func installHint(what, debian, brew string) string {
	return fmt.Sprintf("%s is not installed. Install it (Debian/Ubuntu: sudo apt-get install -y %s; macOS: brew install %s) and run make dev again, or point the URL in .dev/env at a running server", what, debian, brew)
}

// pgSearchPath lists where PostgreSQL's server binaries live on common
// systems: Debian keeps them out of PATH, under /usr/lib/postgresql/<v>/bin.
func pgSearchPath() []string {
	var dirs []string
	if p, err := exec.LookPath("postgres"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, pattern := range []string{
		"/usr/lib/postgresql/*/bin",
		"/usr/pgsql-*/bin",
		"/opt/homebrew/opt/postgresql*/bin",
		"/usr/local/opt/postgresql*/bin",
		"/Applications/Postgres.app/Contents/Versions/*/bin",
	} {
		m, _ := filepath.Glob(pattern)
		sort.Sort(sort.Reverse(sort.StringSlice(m))) // newest version first (good enough for 1-2 digit majors)
		dirs = append(dirs, m...)
	}
	return append(dirs, "/usr/local/pgsql/bin")
}

// findPostgres returns the first directory in dirs holding both initdb and
// postgres, preferring one whose major version is want (the version of an
// existing data directory) when want is not "".
func findPostgres(dirs []string, want string) (string, error) {
	var first string
	for _, d := range dirs {
		if !executable(filepath.Join(d, "initdb")) || !executable(filepath.Join(d, "postgres")) {
			continue
		}
		if want == "" || pgMajor(d) == want {
			return d, nil
		}
		if first == "" {
			first = d
		}
	}
	if first != "" {
		return "", fmt.Errorf("the data directory was made by PostgreSQL %s but only another version is installed (%s); install PostgreSQL %s or delete the data directory", want, first, want)
	}
	return "", errors.New(installHint("PostgreSQL", "postgresql", "postgresql@17"))
}

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// pgMajor returns the major version of the postgres binary in dir ("15").
func pgMajor(dir string) string {
	out, err := exec.Command(filepath.Join(dir, "postgres"), "--version").Output()
	if err != nil {
		return ""
	}
	f := strings.Fields(string(out)) // postgres (PostgreSQL) 15.20 (Debian ...)
	if len(f) < 3 {
		return ""
	}
	major, _, _ := strings.Cut(f[2], ".")
	return major
}

// pgUser is who runs our own Postgres: PostgreSQL refuses to run as root,
// so a root kiln-dev (containers, CI) runs it as the postgres user.
func pgUser() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, errors.New("PostgreSQL refuses to run as root and there is no postgres user to run it as; run make dev as a normal user")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// startPostgres starts our own Postgres on port with its data under
// dir/pg (initialised on first use: user postgres, trust authentication,
// TCP on 127.0.0.1 only, no Unix socket), and waits until it accepts
// connections.
func startPostgres(ctx context.Context, sup *supervisor, dir string, port int, searchPath []string) (*child, error) {
	data, err := filepath.Abs(filepath.Join(dir, "pg"))
	if err != nil {
		return nil, err
	}
	have := ""
	if b, err := os.ReadFile(filepath.Join(data, "PG_VERSION")); err == nil {
		have = strings.TrimSpace(string(b))
	}
	bin, err := findPostgres(searchPath, have)
	if err != nil {
		return nil, err
	}
	cred, err := pgUser()
	if err != nil {
		return nil, err
	}
	if cred != nil {
		// .dev is private (0700, it holds secrets); the postgres user needs
		// to pass through it, not to read it.
		if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(dir, fi.Mode().Perm()|0o011); err != nil {
				return nil, fmt.Errorf("let the postgres user through %s: %w", dir, err)
			}
		}
	}
	if have == "" {
		if err := os.MkdirAll(data, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", data, err)
		}
		if cred != nil {
			if err := os.Chown(data, int(cred.Uid), int(cred.Gid)); err != nil {
				return nil, fmt.Errorf("hand %s to the postgres user: %w", data, err)
			}
		}
		sup.log.Printf("initialising a Postgres data directory in %s (PostgreSQL %s)", data, pgMajor(bin))
		initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8")
		initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if out, err := initdb.CombinedOutput(); err != nil {
			hint := ""
			if cred != nil {
				hint = " (running as root: the postgres user must be able to reach " + data + ")"
			}
			return nil, fmt.Errorf("initdb failed%s: %w\n%s", hint, err, out)
		}
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=")
	c, err := sup.start("postgres", cmd, syscall.SIGINT, cred) // SIGINT: Postgres's fast shutdown
	if err != nil {
		return nil, err
	}
	admin := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	err = waitFor(ctx, c, 30*time.Second, func(ctx context.Context) error {
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			return err
		}
		return conn.Close(ctx)
	})
	if err != nil {
		c.stop(10 * time.Second)
		return nil, fmt.Errorf("our Postgres on port %d did not come up: %w", port, err)
	}
	return c, nil
}

// startRedis starts our own redis-server on port, keeping its snapshot in
// dir/redis, and waits until it answers PING.
func startRedis(ctx context.Context, sup *supervisor, dir string, port int) (*child, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New(installHint("Redis", "redis-server", "redis"))
	}
	data, err := filepath.Abs(filepath.Join(dir, "redis"))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", data, err)
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", data,
		"--save", "60", "1", "--appendonly", "no", "--daemonize", "no")
	c, err := sup.start("redis", cmd, syscall.SIGTERM, nil)
	if err != nil {
		return nil, err
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)})
	defer rdb.Close()
	err = waitFor(ctx, c, 15*time.Second, func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
	if err != nil {
		c.stop(10 * time.Second)
		return nil, fmt.Errorf("our Redis on port %d did not come up: %w", port, err)
	}
	return c, nil
}

// waitFor polls ready until it succeeds, the child exits, or timeout.
func waitFor(ctx context.Context, c *child, timeout time.Duration, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		err := ready(pctx)
		pcancel()
		if err == nil {
			return nil
		}
		select {
		case <-c.done:
			return fmt.Errorf("%s exited: %v", c.name, c.err)
		case <-ctx.Done():
			return fmt.Errorf("gave up after %s: %w", timeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ensurePostgres makes sure a Postgres answers where DATABASE_URL points,
// starting our own when nothing is there and it is local. It returns the
// child it started, or nil when it reused a running server.
func ensurePostgres(ctx context.Context, sup *supervisor, dir, dbURL string) (*child, error) {
	e, err := endpointOf(dbURL, 5432)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	switch decide(ctx, e) {
	case reuse:
		sup.log.Printf("postgres: using the server already running on %s", e)
		return nil, nil
	case unreachable:
		return nil, fmt.Errorf("nothing answers at %s (DATABASE_URL); kiln-dev only starts Postgres on this machine", e)
	}
	sup.log.Printf("postgres: nothing on %s; starting our own from the installed binaries", e)
	return startPostgres(ctx, sup, dir, e.Port, pgSearchPath())
}

// ensureRedis is ensurePostgres for REDIS_URL.
func ensureRedis(ctx context.Context, sup *supervisor, dir, redisURL string) (*child, error) {
	e, err := endpointOf(redisURL, 6379)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	switch decide(ctx, e) {
	case reuse:
		sup.log.Printf("redis: using the server already running on %s", e)
		opt, err := redis.ParseURL(redisURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		rdb := redis.NewClient(opt)
		defer rdb.Close()
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := rdb.Ping(pctx).Err(); err != nil {
			return nil, fmt.Errorf("the server on %s does not answer Redis PING with REDIS_URL's credentials: %w", e, err)
		}
		return nil, nil
	case unreachable:
		return nil, fmt.Errorf("nothing answers at %s (REDIS_URL); kiln-dev only starts Redis on this machine", e)
	}
	sup.log.Printf("redis: nothing on %s; starting our own", e)
	return startRedis(ctx, sup, dir, e.Port)
}

// ensureDatabase creates DATABASE_URL's database when it does not exist. It
// reports whether it created it.
func ensureDatabase(ctx context.Context, dbURL string) (bool, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return false, fmt.Errorf("DATABASE_URL: %w", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" {
		return false, errors.New("DATABASE_URL names no database (want postgres://user@host:port/kiln_dev)")
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err == nil {
		return false, conn.Close(ctx)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "3D000" { // invalid_catalog_name: no such database
		return false, fmt.Errorf("cannot connect to %s: %w (fix DATABASE_URL in .dev/env, or stop that server so kiln-dev runs its own)", redactURL(dbURL), err)
	}
	admin := *u
	admin.Path = "/postgres"
	conn, err = pgx.Connect(ctx, admin.String())
	if err != nil {
		return false, fmt.Errorf("connect to create database %s: %w", name, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database: someone else made it
			return false, nil
		}
		return false, fmt.Errorf("create database %s: %w", name, err)
	}
	return true, nil
}

// redactURL hides a URL's password for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}
