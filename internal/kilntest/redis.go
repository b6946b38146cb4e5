package kilntest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Tests never touch a Redis they do not own. By default each test binary
// starts one private redis-server on a free loopback port (the first time a
// test asks for Redis) and hands every test its own database index on it;
// the server keeps nothing on disk and dies with the test binary. A
// developer who wants the tests on another server names one database index
// that the tests may flush, in KILN_TEST_REDIS_URL
// (redis://host:port/N); tests then take turns on that one index.

// privateDatabases is how many database indexes the private server has:
// enough that a package's parallel tests never wait for one.
const privateDatabases = 128

// private is the test binary's own redis-server, started once.
var private struct {
	once sync.Once
	addr string
	err  error

	mu   sync.Mutex
	free []int // database indexes not leased
	wait chan struct{}
}

// Redis gives the test a Redis database of its own and returns a redis://
// URL that selects it. The database is empty at the start and emptied when
// the test ends. It is an index of this test binary's private
// redis-server, or, when KILN_TEST_REDIS_URL names an index, that index,
// held by one test at a time across every test binary.
func Redis(tb testing.TB) string {
	tb.Helper()
	if v := os.Getenv("KILN_TEST_REDIS_URL"); v != "" {
		return namedRedis(tb, v)
	}
	addr, err := privateServer()
	if err != nil {
		tb.Fatalf("kilntest: %v", err)
	}
	db := leaseIndex(tb)
	u := fmt.Sprintf("redis://%s/%d", addr, db)
	flush(tb, u)
	tb.Cleanup(func() {
		flush(tb, u)
		releaseIndex(db)
	})
	return u
}

// flush empties a database this package owns.
func flush(tb testing.TB, u string) {
	opt, err := redis.ParseURL(u)
	if err != nil {
		tb.Fatalf("kilntest: %v", err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.FlushDB(ctx).Err(); err != nil {
		tb.Errorf("kilntest: empty the test's Redis database %s: %v", u, err)
	}
}

func leaseIndex(tb testing.TB) int {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		private.mu.Lock()
		if n := len(private.free); n > 0 {
			db := private.free[n-1]
			private.free = private.free[:n-1]
			private.mu.Unlock()
			return db
		}
		if private.wait == nil {
			private.wait = make(chan struct{})
		}
		wait := private.wait
		private.mu.Unlock()
		select {
		case <-wait:
		case <-time.After(time.Until(deadline)):
			tb.Fatalf("kilntest: all %d Redis databases of the private server stayed in use for 2 minutes", privateDatabases)
		}
	}
}

func releaseIndex(db int) {
	private.mu.Lock()
	defer private.mu.Unlock()
	private.free = append(private.free, db)
	if private.wait != nil {
		close(private.wait)
		private.wait = nil
	}
}

// privateServer starts the test binary's redis-server once and returns its
// address.
func privateServer() (string, error) {
	private.once.Do(func() {
		private.addr, private.err = startPrivate()
		for db := privateDatabases - 1; db >= 0; db-- {
			private.free = append(private.free, db)
		}
	})
	return private.addr, private.err
}

// startPrivate runs redis-server on a free loopback port, persisting
// nothing. The process is started from a goroutine that keeps its OS thread
// for good, so the parent-death signal (which Linux ties to the thread that
// started the child) kills the server exactly when the test binary exits,
// however it exits.
func startPrivate() (string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", errors.New("redis-server is not installed (Debian: apt-get install -y redis-server; make test installs it)")
	}
	var last error
	for attempt := 0; attempt < 5; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		addr := "127.0.0.1:" + strconv.Itoa(port)
		started := make(chan error, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: see above
			cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
				"--save", "", "--appendonly", "no", "--dir", os.TempDir(),
				"--databases", strconv.Itoa(privateDatabases), "--loglevel", "warning")
			cmd.SysProcAttr = privateProcAttr()
			stderr, _ := cmd.StderrPipe()
			cmd.Stdout = nil
			if err := cmd.Start(); err != nil {
				started <- err
				return
			}
			started <- nil
			go drain(stderr)
			_ = cmd.Wait()
			select {} // keep the thread, and so the server, for the binary's life
		}()
		if err := <-started; err != nil {
			return "", fmt.Errorf("start redis-server: %w", err)
		}
		if last = waitPing(addr, 10*time.Second); last == nil {
			return addr, nil
		}
	}
	return "", fmt.Errorf("the private redis-server did not answer: %w", last)
}

func drain(r interface{ Read([]byte) (int, error) }) {
	if r == nil {
		return
	}
	s := bufio.NewScanner(r)
	for s.Scan() {
	}
}

func waitPing(addr string, timeout time.Duration) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// namedLease is the key that says which test holds the named index.
const namedLease = "kiln:test:lease"

// namedRedis hands the test the one index the developer named, once no
// other test holds it. The index is emptied (every key but the lease) when
// the test takes it and when it ends.
func namedRedis(tb testing.TB, raw string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
		tb.Fatalf("kilntest: KILN_TEST_REDIS_URL=%q is not a redis:// URL", raw)
	}
	if _, err := strconv.Atoi(strings.Trim(u.Path, "/")); err != nil {
		tb.Fatalf("kilntest: KILN_TEST_REDIS_URL must name the one database index the tests may empty, e.g. redis://127.0.0.1:6379/9 (got %q)", u.Redacted())
	}
	opt, err := redis.ParseURL(raw)
	if err != nil {
		tb.Fatalf("kilntest: %v", err)
	}
	c := redis.NewClient(opt)
	ctx := context.Background()
	owner := Name("lease")
	deadline := time.Now().Add(10 * time.Minute)
	for {
		ok, err := c.SetNX(ctx, namedLease, owner, 15*time.Minute).Result()
		if err != nil {
			c.Close()
			tb.Fatalf("kilntest: KILN_TEST_REDIS_URL (%s): %v", u.Redacted(), err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			c.Close()
			tb.Fatalf("kilntest: the Redis index in KILN_TEST_REDIS_URL stayed held by another test for 10 minutes (delete the key %s if no test runs)", namedLease)
		}
		time.Sleep(100 * time.Millisecond)
	}
	empty := func() {
		iter := c.Scan(ctx, 0, "*", 1000).Iterator()
		for iter.Next(ctx) {
			if k := iter.Val(); k != namedLease {
				c.Del(ctx, k)
			}
		}
	}
	empty()
	tb.Cleanup(func() {
		defer c.Close()
		empty()
		if v, _ := c.Get(ctx, namedLease).Result(); v == owner {
			c.Del(ctx, namedLease)
		}
	})
	return raw
}
