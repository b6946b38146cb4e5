package http_test

import (
	"errors"
	"testing"
	"time"

	httpdriver "github.com/kiln-dev/kiln/internal/drivers/http"
)

func TestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"plan":"basic"}`)
	good := httpdriver.Sign(secret, now, "PUT", "/resources/x", body)
	tests := []struct {
		name   string
		header string
		at     time.Time
		method string
		path   string
		body   []byte
		want   error
	}{
		{"valid", good, now, "PUT", "/resources/x", body, nil},
		{"valid within tolerance", good, now.Add(4 * time.Minute), "PUT", "/resources/x", body, nil},
		{"one of several v1", "t=1800000000,v1=00ff," + good[len("t=1800000000,"):], now, "PUT", "/resources/x", body, nil},
		{"missing", "", now, "PUT", "/resources/x", body, httpdriver.ErrNoSignature},
		{"stale", good, now.Add(6 * time.Minute), "PUT", "/resources/x", body, httpdriver.ErrStale},
		{"from the future", good, now.Add(-6 * time.Minute), "PUT", "/resources/x", body, httpdriver.ErrStale},
		{"other body", good, now, "PUT", "/resources/x", []byte(`{"plan":"pro"}`), httpdriver.ErrBadSignature},
		{"other path", good, now, "PUT", "/resources/y", body, httpdriver.ErrBadSignature},
		{"other method", good, now, "POST", "/resources/x", body, httpdriver.ErrBadSignature},
		{"other secret", httpdriver.Sign("another-secret", now, "PUT", "/resources/x", body), now, "PUT", "/resources/x", body, httpdriver.ErrBadSignature},
		{"garbage", "v1=abc", now, "PUT", "/resources/x", body, httpdriver.ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := httpdriver.Verify(secret, tt.header, tt.at, tt.method, tt.path, tt.body)
			if !errors.Is(err, tt.want) && !(err == nil && tt.want == nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestSignKnownAnswer pins the scheme, so a change to it cannot pass
// unnoticed: HMAC-SHA256("secret", "1800000000.POST /resources.{}").
func TestSignKnownAnswer(t *testing.T) {
	got := httpdriver.Sign("secret", time.Unix(1_800_000_000, 0), "POST", "/resources", []byte("{}"))
	// printf '1800000000.POST /resources.{}' | openssl dgst -sha256 -hmac secret -r
	want := "t=1800000000,v1=" + knownMAC
	if got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

const knownMAC = "abc6aaacd40975301c90be7b029c96c7ef0513bf6e5a5cdebc8b5b6e5fdb9c4b"
