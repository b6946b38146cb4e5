package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"github.com/kiln-dev/kiln/internal/addon"
)

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
