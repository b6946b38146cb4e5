package secret

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
)

func key(tb testing.TB) []byte {
	tb.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		tb.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	old, cur := key(t), key(t)
	before, err := New([][]byte{old})
	if err != nil {
		t.Fatal(err)
	}
	after, err := New([][]byte{cur, old}) // rotated: new key first
	if err != nil {
		t.Fatal(err)
	}
	other, _ := New([][]byte{key(t)})
	secret := []byte("access-token-abc123")

	sealedOld, _ := before.Seal(secret)
	sealedNew, _ := after.Seal(secret)
	again, _ := after.Seal(secret)
	if bytes.Contains(sealedNew, secret) || bytes.Equal(sealedNew, again) {
		t.Fatal("ciphertext reveals the plaintext or repeats (nonce reuse)")
	}
	tampered := append([]byte(nil), sealedNew...)
	tampered[len(tampered)-1] ^= 1

	tests := []struct {
		name   string
		ring   *Keyring
		sealed []byte
		ok     bool
	}{
		{"new key opens its own", after, sealedNew, true},
		{"rotated ring opens the old key's values", after, sealedOld, true},
		{"old ring cannot open the new key's values", before, sealedNew, false},
		{"another key", other, sealedNew, false},
		{"tampered", after, tampered, false},
		{"truncated", after, sealedNew[:4], false},
		{"empty", after, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.ring.Open(tt.sealed)
			if tt.ok && (err != nil || !bytes.Equal(got, secret)) {
				t.Errorf("Open = %q, %v; want the secret", got, err)
			}
			if !tt.ok && !errors.Is(err, ErrUndecryptable) {
				t.Errorf("Open = %q, %v; want ErrUndecryptable", got, err)
			}
		})
	}
}

func TestNewRefusesBadKeys(t *testing.T) {
	for name, keys := range map[string][][]byte{
		"none":  nil,
		"short": {make([]byte, 16)},
	} {
		if _, err := New(keys); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}

func TestEqual(t *testing.T) {
	if !Equal("a", "a") || Equal("a", "b") || Equal("a", "") {
		t.Error("Equal is wrong")
	}
	if !EqualAny("two", []string{"one", "two"}) || EqualAny("three", []string{"one", "two"}) || EqualAny("x", nil) {
		t.Error("EqualAny is wrong")
	}
}

func TestSealForBindsContext(t *testing.T) {
	ring, _ := New([][]byte{key(t)})
	sealed, err := ring.SealFor([]byte("token"), "addons/a/access_token")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ring.OpenFor(sealed, "addons/a/access_token"); err != nil || string(got) != "token" {
		t.Fatalf("OpenFor with the same context = %q, %v", got, err)
	}
	for _, ctx := range []string{"addons/b/access_token", "addons/a/refresh_token", ""} {
		if _, err := ring.OpenFor(sealed, ctx); !errors.Is(err, ErrUndecryptable) {
			t.Errorf("OpenFor(%q) = %v, want ErrUndecryptable", ctx, err)
		}
	}
	if _, err := ring.Open(sealed); !errors.Is(err, ErrUndecryptable) {
		t.Errorf("Open of a context-bound value = %v, want ErrUndecryptable", err)
	}
}
