package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
)

// console is kiln-dev's terminal: every line, from kiln-dev itself or a
// child process, goes out whole and prefixed with who wrote it, like
// foreman's, so interleaved logs from web, worker and Postgres stay
// readable.
type console struct {
	mu    sync.Mutex
	w     io.Writer
	width int
	color bool
	next  int
}

// colors are ANSI foreground colours handed out to names in turn.
var colors = []string{"36", "33", "32", "35", "34", "31", "96", "93"}

func newConsole(w io.Writer) *console {
	return &console{w: w, width: 8, color: isTerminal(w)}
}

// isTerminal reports whether colour codes would be understood, honouring
// NO_COLOR (no-color.org).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// writer returns a line-buffering writer whose lines carry name.
func (c *console) writer(name string) *prefixWriter {
	c.mu.Lock()
	defer c.mu.Unlock()
	prefix := fmt.Sprintf("%-*s | ", c.width, name)
	if c.color {
		prefix = "\x1b[" + colors[c.next%len(colors)] + "m" + prefix + "\x1b[0m"
		c.next++
	}
	return &prefixWriter{c: c, prefix: prefix}
}

func (c *console) write(prefix string, line []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	buf := make([]byte, 0, len(prefix)+len(line)+1)
	buf = append(append(append(buf, prefix...), line...), '\n')
	if _, err := c.w.Write(buf); err != nil && errors.Is(err, syscall.EPIPE) {
		// The reader went away (make dev | tee log, and Ctrl-C killed tee):
		// keep stopping everything cleanly, with nowhere to say so. main
		// ignores SIGPIPE, so the write failed instead of killing kiln-dev.
		c.w = io.Discard
	}
}

// prefixWriter buffers a partial line until its newline arrives.
type prefixWriter struct {
	c      *console
	prefix string
	mu     sync.Mutex
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		p.c.write(p.prefix, bytes.TrimRight(p.buf[:i], "\r"))
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

// Flush writes what is left of an unterminated last line.
func (p *prefixWriter) Flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.buf) > 0 {
		p.c.write(p.prefix, p.buf)
		p.buf = nil
	}
}

// Printf writes a formatted message, one prefixed line per line.
func (p *prefixWriter) Printf(format string, args ...any) {
	msg := strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	_, _ = p.Write([]byte(msg + "\n"))
}
