package main

import (
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// supervisor starts child processes with prefixed output and stops them in
// order. Each child runs in its own process group, so the terminal's Ctrl-C
// reaches kiln-dev alone and kiln-dev decides the order things stop in
// (Kiln's processes first, then the servers they use).
type supervisor struct {
	con *console
	log *prefixWriter
	env []string

	mu       sync.Mutex
	children []*child
	exited   chan *child // every child that exits is sent here once
}

func newSupervisor(con *console, env []string) *supervisor {
	return &supervisor{con: con, log: con.writer("kiln-dev"), env: env, exited: make(chan *child, 16)}
}

// child is one process kiln-dev started.
type child struct {
	name     string
	cmd      *exec.Cmd
	stopWith syscall.Signal
	out      *prefixWriter
	done     chan struct{} // closed when the process has exited
	err      error         // its exit error, set before done closes
	stopping bool
	mu       sync.Mutex
}

// start runs cmd as a child called name. stopWith is the signal that makes
// it shut down cleanly; cred, when not nil, runs it as another user.
func (s *supervisor) start(name string, cmd *exec.Cmd, stopWith syscall.Signal, cred *syscall.Credential) (*child, error) {
	c := &child{name: name, cmd: cmd, stopWith: stopWith, out: s.con.writer(name), done: make(chan struct{})}
	if cmd.Env == nil {
		cmd.Env = s.env
	}
	cmd.Stdout, cmd.Stderr = c.out, c.out
	cmd.SysProcAttr = sysProcAttr(stopWith, cred)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s.log.Printf("started %s (pid %d)", name, cmd.Process.Pid)
	s.mu.Lock()
	s.children = append(s.children, c)
	s.mu.Unlock()
	go func() {
		c.err = cmd.Wait()
		c.out.Flush()
		close(c.done)
		s.exited <- c
	}()
	return c, nil
}

// stop asks the child to shut down with its stop signal and kills it if it
// is still running after grace. It returns once the child has exited.
func (c *child) stop(grace time.Duration) {
	c.mu.Lock()
	c.stopping = true
	c.mu.Unlock()
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(c.stopWith)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		c.out.Printf("still running %s after %s: killing it", c.stopWith, grace)
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// expect marks a child whose exit is normal (a one-shot command).
func (c *child) expect() {
	c.mu.Lock()
	c.stopping = true
	c.mu.Unlock()
}

// kill ends the child at once, for a second Ctrl-C.
func (c *child) kill() {
	c.mu.Lock()
	c.stopping = true
	c.mu.Unlock()
	_ = c.cmd.Process.Kill()
}

// expected reports whether the child was told to stop, so its exit is not
// a crash.
func (c *child) expected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopping
}

// stopAll stops the given children at the same time, each with grace.
func stopAll(grace time.Duration, cs ...*child) {
	var wg sync.WaitGroup
	for _, c := range cs {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.stop(grace)
		}()
	}
	wg.Wait()
}

// killAll kills every child still running.
func (s *supervisor) killAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.children {
		c.kill()
	}
}
