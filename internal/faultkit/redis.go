package faultkit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// FreePort returns a loopback port nobody listens on right now.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Redis is a redis-server (or redis-sentinel) process of the kit's own, so
// a test can kill it without disturbing anyone else's Redis.
type Redis struct {
	Port int
	bin  string
	args []string
	dir  string
	mu   sync.Mutex
	cmd  *exec.Cmd
}

// StartRedis runs redis-server on port (a free one when 0) keeping nothing
// on disk, with extra arguments (e.g. "--replicaof", "127.0.0.1", "6380").
func StartRedis(dir string, port int, extra ...string) (*Redis, error) {
	if port == 0 {
		var err error
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	// Each server keeps its own directory: a replica's full sync writes an
	// RDB file that must not be the primary's.
	dir = filepath.Join(dir, "redis-"+strconv.Itoa(port))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	r := &Redis{Port: port, bin: "redis-server", dir: dir}
	r.args = append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--protected-mode", "no",
		// A replica's first sync starts at once, not after Redis's 5 s wait
		// for more replicas.
		"--repl-diskless-sync-delay", "0"}, extra...)
	return r, r.Start()
}

// Addr is host:port.
func (r *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.Port) }

// Start runs the process (again, after Kill) and waits until it answers
// PING.
func (r *Redis) Start() error {
	if _, err := exec.LookPath(r.bin); err != nil {
		return fmt.Errorf("faultkit: %s not installed (scripts/services.sh installs it): %w", r.bin, err)
	}
	r.mu.Lock()
	r.cmd = exec.Command(r.bin, r.args...)
	r.cmd.SysProcAttr = SysProcAttr()
	log, err := os.OpenFile(filepath.Join(r.dir, fmt.Sprintf("redis-%d.log", r.Port)), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err == nil {
		r.cmd.Stdout, r.cmd.Stderr = log, log
	}
	err = r.cmd.Start()
	cmd := r.cmd
	r.mu.Unlock()
	if log != nil {
		defer log.Close()
	}
	if err != nil {
		return fmt.Errorf("faultkit: start %s: %w", r.bin, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := Command(r.Addr(), "PING"); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return fmt.Errorf("faultkit: %s on port %d did not answer PING", r.bin, r.Port)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Pid is the process id of the running server, or 0 after Kill.
func (r *Redis) Pid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil || r.cmd.Process == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// Kill sends SIGKILL: the server gets no chance to hand anything over.
func (r *Redis) Kill() {
	r.mu.Lock()
	cmd := r.cmd
	r.cmd = nil
	r.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
}

// Command sends one command in RESP to addr and returns the first line of
// the answer (or an error for -ERR), or the body of a bulk string answer:
// enough for PING, ROLE, INFO and SENTINEL checks without a client library.
func Command(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	rd := bufio.NewReader(c)
	line, err := rd.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if strings.HasPrefix(line, "-") {
		return "", errors.New(line[1:])
	}
	if n, err := strconv.Atoi(strings.TrimPrefix(line, "$")); strings.HasPrefix(line, "$") && err == nil && n >= 0 {
		buf := make([]byte, n+2) // a bulk string (INFO): its body
		if _, err := io.ReadFull(rd, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return line, nil
}

// masterAddr asks one Sentinel where the named primary is.
func masterAddr(sentinel, name string) (string, error) {
	c, err := net.DialTimeout("tcp", sentinel, 500*time.Millisecond)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	cmd := fmt.Sprintf("*3\r\n$8\r\nSENTINEL\r\n$23\r\nget-master-addr-by-name\r\n$%d\r\n%s\r\n", len(name), name)
	if _, err := c.Write([]byte(cmd)); err != nil {
		return "", err
	}
	rd := bufio.NewReader(c)
	var parts []string
	for len(parts) < 2 {
		line, err := rd.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(line, "*-1"), strings.HasPrefix(line, "-"):
			return "", fmt.Errorf("sentinel %s does not know %s", sentinel, name)
		case strings.HasPrefix(line, "*"), strings.HasPrefix(line, "$"):
		default:
			parts = append(parts, line)
		}
	}
	return net.JoinHostPort(parts[0], parts[1]), nil
}

// SentinelGroup is a highly available Redis as partners run it: a primary,
// a replica and three Sentinels that agree (quorum 2) to promote the
// replica when the primary stops answering.
type SentinelGroup struct {
	Master    string
	Servers   []*Redis // [0] started as the primary, [1] as its replica
	Sentinels []*Redis
	DownAfter time.Duration
}

// StartSentinelGroup starts the group in dir. The Sentinels call the
// primary down after downAfter without an answer (production default: 30 s;
// tests use about a second).
func StartSentinelGroup(dir, master string, downAfter time.Duration) (*SentinelGroup, error) {
	g := &SentinelGroup{Master: master, DownAfter: downAfter}
	primary, err := StartRedis(dir, 0)
	if err != nil {
		return nil, err
	}
	g.Servers = append(g.Servers, primary)
	replica, err := StartRedis(dir, 0, "--replicaof", "127.0.0.1", strconv.Itoa(primary.Port))
	if err != nil {
		g.Close()
		return nil, err
	}
	g.Servers = append(g.Servers, replica)
	for i := 0; i < 3; i++ {
		port, err := FreePort()
		if err != nil {
			g.Close()
			return nil, err
		}
		conf := filepath.Join(dir, fmt.Sprintf("sentinel-%d.conf", port))
		body := fmt.Sprintf("port %d\nbind 127.0.0.1\nprotected-mode no\ndir %s\n"+
			"sentinel monitor %s 127.0.0.1 %d 2\n"+
			"sentinel down-after-milliseconds %s %d\n"+
			"sentinel failover-timeout %s %d\n"+
			"sentinel parallel-syncs %s 1\n",
			port, dir, master, primary.Port, master, downAfter.Milliseconds(), master, max(3*downAfter.Milliseconds(), 3000), master)
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			g.Close()
			return nil, err
		}
		s := &Redis{Port: port, bin: "redis-sentinel", dir: dir, args: []string{conf}}
		if _, err := exec.LookPath("redis-sentinel"); err != nil {
			// Debian's redis-sentinel package is the same binary in
			// Sentinel mode; redis-server alone can run it so.
			s.bin, s.args = "redis-server", []string{conf, "--sentinel"}
		}
		if err := s.Start(); err != nil {
			g.Close()
			return nil, err
		}
		g.Sentinels = append(g.Sentinels, s)
	}
	// Wait until the replica holds the primary's data and the Sentinels
	// know it, or a failover could find no one to promote, or promote an
	// empty replica.
	err = g.wait(20*time.Second, func() bool {
		info, err := Command(replica.Addr(), "INFO", "replication")
		if err != nil || !strings.Contains(info, "master_link_status:up") {
			return false
		}
		for _, s := range g.Sentinels {
			line, err := Command(s.Addr(), "SENTINEL", "REPLICAS", master)
			if err != nil || line == "*0" {
				return false
			}
		}
		return true
	})
	if err != nil {
		g.Close()
		return nil, fmt.Errorf("faultkit: sentinels did not discover the replica: %w", err)
	}
	return g, nil
}

func (g *SentinelGroup) wait(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// URL is REDIS_URL for Kiln: the three Sentinels, the master name, db.
func (g *SentinelGroup) URL(db int) string {
	addrs := make([]string, len(g.Sentinels))
	for i, s := range g.Sentinels {
		addrs[i] = s.Addr()
	}
	return fmt.Sprintf("redis+sentinel://%s/%s/%d", strings.Join(addrs, ","), g.Master, db)
}

// Primary asks the Sentinels where the primary is.
func (g *SentinelGroup) Primary() (string, error) {
	var last error
	for _, s := range g.Sentinels {
		addr, err := masterAddr(s.Addr(), g.Master)
		if err == nil {
			return addr, nil
		}
		last = err
	}
	return "", last
}

// server returns the process listening on addr.
func (g *SentinelGroup) server(addr string) *Redis {
	for _, r := range g.Servers {
		if r.Addr() == addr {
			return r
		}
	}
	return nil
}

// Failover SIGKILLs the primary and waits (up to timeout) until the
// Sentinels name another one; it returns the old and new primaries'
// addresses. The killed server stays down until Rejoin.
func (g *SentinelGroup) Failover(ctx context.Context, timeout time.Duration) (old, now string, err error) {
	old, err = g.Primary()
	if err != nil {
		return "", "", err
	}
	r := g.server(old)
	if r == nil {
		return "", "", fmt.Errorf("faultkit: primary %s is not one of the group's servers", old)
	}
	r.Kill()
	err = g.wait(timeout, func() bool {
		if ctx.Err() != nil {
			return true
		}
		now, _ = g.Primary()
		if now == "" || now == old {
			return false
		}
		role, err := Command(now, "ROLE")
		return err == nil && role == "*3" // a primary answers three elements
	})
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return old, "", fmt.Errorf("faultkit: no new primary after killing %s: %w", old, err)
	}
	return old, now, nil
}

// Rejoin restarts every killed server; the Sentinels turn a former primary
// into a replica of the current one.
func (g *SentinelGroup) Rejoin() error {
	for _, r := range g.Servers {
		r.mu.Lock()
		dead := r.cmd == nil
		r.mu.Unlock()
		if dead {
			if err := r.Start(); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close kills every process of the group.
func (g *SentinelGroup) Close() {
	for _, s := range g.Sentinels {
		s.Kill()
	}
	for _, r := range g.Servers {
		r.Kill()
	}
}
