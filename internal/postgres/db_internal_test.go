package postgres

import (
	"context"
	"errors"
	"net/url"
	"testing"
)

func TestWithDefaults(t *testing.T) {
	tests := []struct {
		name, in, sslmode string
	}{
		{"Heroku URL gets sslmode=require", "postgres://u:p@ec2-1-2-3-4.compute-1.amazonaws.com:5432/d8f", "require"},
		{"postgresql scheme too", "postgresql://u:p@db.example.com/d", "require"},
		{"explicit sslmode kept", "postgres://u:p@db.example.com/d?sslmode=verify-full", "verify-full"},
		{"explicit disable kept", "postgres://u:p@db.example.com/d?sslmode=disable", "disable"},
		{"localhost left alone", "postgres://u:p@localhost:5432/d", ""},
		{"loopback left alone", "postgres://u:p@127.0.0.1/d", ""},
		{"IPv6 loopback left alone", "postgres://u:p@[::1]:5432/d", ""},
		{"Unix socket left alone", "postgres:///d?host=/var/run/postgresql", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := withDefaults(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			u, err := url.Parse(out)
			if err != nil {
				t.Fatal(err)
			}
			if got := u.Query().Get("sslmode"); got != tt.sslmode {
				t.Errorf("sslmode = %q, want %q (url %s)", got, tt.sslmode, out)
			}
			if _, err := connConfig(tt.in); err != nil {
				t.Errorf("connConfig: %v", err)
			}
		})
	}
}

func TestGate(t *testing.T) {
	g := make(gate, 1)
	ctx := context.Background()
	if err := g.enter(ctx); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := g.enter(cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("enter on a full gate with a cancelled context = %v, want context.Canceled", err)
	}
	g.leave()
	if err := g.enter(cancelled); err != nil || len(g) != 1 {
		t.Fatalf("a free slot was refused: %v", err)
	}
	var none gate
	if err := none.enter(cancelled); err != nil {
		t.Errorf("a nil gate refused: %v", err)
	}
	none.leave() // must not block
}
