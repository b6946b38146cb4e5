package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"github.com/kiln-dev/kiln/internal/addon"
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

func TestDBError(t *testing.T) {
	domain := addon.Errorf(addon.EGONE, "gone")
	tests := []struct {
		name string
		err  error
		code string
	}{
		{"record not found", fmt.Errorf("take: %w", gorm.ErrRecordNotFound), addon.ENOTFOUND},
		{"unique violation", &pgconn.PgError{Code: "23505"}, addon.ECONFLICT},
		{"connection failure", &pgconn.PgError{Code: "08006"}, addon.EUNAVAILABLE},
		{"too many connections", &pgconn.PgError{Code: "53300"}, addon.EUNAVAILABLE},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, addon.EUNAVAILABLE},
		{"deadlock", &pgconn.PgError{Code: "40P01"}, addon.EUNAVAILABLE},
		{"statement timeout", &pgconn.PgError{Code: "57014"}, addon.EUNAVAILABLE},
		{"syntax error", &pgconn.PgError{Code: "42601"}, addon.EINTERNAL},
		{"deadline", context.DeadlineExceeded, addon.EUNAVAILABLE},
		{"anything else", errors.New("boom"), addon.EINTERNAL},
		{"domain error kept", domain, addon.EGONE},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := dbError(tt.err, "0d0e0f00-0000-4000-8000-000000000000")
			if code := addon.ErrorCode(got); code != tt.code {
				t.Fatalf("code = %q, want %q (err %v)", code, tt.code, got)
			}
			if tt.code != addon.ENOTFOUND && !errors.Is(got, tt.err) {
				t.Errorf("%v does not wrap the cause %v", got, tt.err)
			}
		})
	}
	if dbError(nil, "") != nil {
		t.Error("dbError(nil) is not nil")
	}
}
