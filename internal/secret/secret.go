// Package secret encrypts what Kiln keeps for customers (OAuth tokens,
// resource credentials) with AES-256-GCM, so a database dump alone reveals
// nothing. Several keys are accepted for rotation: the first encrypts, any of
// them decrypts.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
)

// Keyring holds the encryption keys, newest first.
type Keyring struct {
	aeads []cipher.AEAD
	ids   [][4]byte
}

// version is the first byte of every ciphertext, so the format can change.
const version = 1

// New builds a keyring from 32-byte keys, newest first.
func New(keys [][]byte) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("secret: no keys")
	}
	k := &Keyring{}
	for i, key := range keys {
		if len(key) != 32 {
			return nil, fmt.Errorf("secret: key %d has %d bytes, want 32", i+1, len(key))
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("secret: %w", err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("secret: %w", err)
		}
		sum := sha256.Sum256(key)
		k.aeads = append(k.aeads, aead)
		k.ids = append(k.ids, [4]byte(sum[:4]))
	}
	return k, nil
}

// Seal encrypts plaintext with the newest key. The result is
// version | key id (4 bytes) | nonce | ciphertext+tag.
func (k *Keyring) Seal(plaintext []byte) ([]byte, error) { return k.SealFor(plaintext, "") }

// SealFor encrypts plaintext bound to a context string (say, the row and
// column it is stored in): it opens only with OpenFor and the same context,
// so someone who can write the database cannot move one customer's sealed
// token onto another customer's row.
func (k *Keyring) SealFor(plaintext []byte, context string) ([]byte, error) {
	aead := k.aeads[0]
	out := make([]byte, 0, 1+4+aead.NonceSize()+len(plaintext)+aead.Overhead())
	out = append(out, version)
	out = append(out, k.ids[0][:]...)
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("secret: nonce: %w", err)
	}
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plaintext, append(out[:5:5], context...)), nil
}

// ErrUndecryptable means no key of the ring opens the ciphertext: it was
// sealed with a key that has been removed, or it was tampered with.
var ErrUndecryptable = errors.New("secret: no key decrypts this value")

// Open decrypts a value sealed by any key of the ring with Seal.
func (k *Keyring) Open(sealed []byte) ([]byte, error) { return k.OpenFor(sealed, "") }

// OpenFor decrypts a value sealed by any key of the ring with SealFor and the
// same context.
func (k *Keyring) OpenFor(sealed []byte, context string) ([]byte, error) {
	if len(sealed) < 5 || sealed[0] != version {
		return nil, ErrUndecryptable
	}
	for i, aead := range k.aeads {
		if subtle.ConstantTimeCompare(sealed[1:5], k.ids[i][:]) != 1 {
			continue
		}
		ns := aead.NonceSize()
		if len(sealed) < 5+ns {
			return nil, ErrUndecryptable
		}
		pt, err := aead.Open(nil, sealed[5:5+ns], sealed[5+ns:], append(sealed[:5:5], context...))
		if err != nil {
			return nil, ErrUndecryptable
		}
		return pt, nil
	}
	return nil, ErrUndecryptable
}

// Equal compares two secrets in constant time, so a caller guessing a
// password learns nothing from how long a refusal takes.
func Equal(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// EqualAny reports whether got equals any of the wants, checking every one so
// the time taken does not depend on which matched.
func EqualAny(got string, wants []string) bool {
	ok := 0
	for _, w := range wants {
		if Equal(got, w) {
			ok = 1
		}
	}
	return ok == 1
}
