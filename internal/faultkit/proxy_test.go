package faultkit_test

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/faultkit"
)

// echoServer answers every line with the same line.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

// roundTrip sends a line and waits up to timeout for it back.
func roundTrip(c net.Conn, rd *bufio.Reader, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return 0, err
	}
	_, err := rd.ReadString('\n')
	return time.Since(start), err
}

func TestProxyFaults(t *testing.T) {
	kit := faultkit.New()
	t.Cleanup(kit.Close)
	p, err := kit.Proxy("echo", echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rd := bufio.NewReader(c)
	if _, err := roundTrip(c, rd, time.Second); err != nil {
		t.Fatalf("through a healthy proxy: %v", err)
	}

	t.Run("latency", func(t *testing.T) {
		if err := p.Latency(150, 0); err != nil {
			t.Fatal(err)
		}
		d, err := roundTrip(c, rd, 2*time.Second)
		if err != nil || d < 140*time.Millisecond {
			t.Fatalf("round trip %s, %v; want at least 150 ms late", d, err)
		}
		if err := p.Latency(0, 0); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("blackhole", func(t *testing.T) {
		if err := p.Blackhole(); err != nil {
			t.Fatal(err)
		}
		if _, err := roundTrip(c, rd, 300*time.Millisecond); err == nil {
			t.Fatal("an answer came through a blackhole")
		}
		p.Heal()
		// The healed proxy closed the connection whose bytes it swallowed;
		// a new one works.
		c2, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		if _, err := roundTrip(c2, bufio.NewReader(c2), time.Second); err != nil {
			t.Fatalf("after Heal: %v", err)
		}
	})

	t.Run("reset", func(t *testing.T) {
		c3, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c3.Close()
		rd3 := bufio.NewReader(c3)
		if _, err := roundTrip(c3, rd3, time.Second); err != nil {
			t.Fatal(err)
		}
		if err := p.Reset(); err != nil {
			t.Fatal(err)
		}
		if _, err := roundTrip(c3, rd3, time.Second); err == nil {
			t.Fatal("a connection survived Reset")
		}
		c4, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatalf("the proxy does not accept connections after Reset: %v", err)
		}
		defer c4.Close()
		if _, err := roundTrip(c4, bufio.NewReader(c4), time.Second); err != nil {
			t.Fatalf("after Reset: %v", err)
		}
	})
}
