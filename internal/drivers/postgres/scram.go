package postgres

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
)

// scramIterations matches Postgres's default (scram_iterations) so a
// verifier made here costs the same to check as one the server makes.
const scramIterations = 4096

// newPassword returns 32 random bytes, hex-encoded so the password needs no
// escaping in a URL or in SQL.
func newPassword() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random password: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// newCredential makes a new password and its SCRAM verifier, the form in
// which the password is given to Postgres (scramVerifier).
func newCredential() (password, verifier string, err error) {
	if password, err = newPassword(); err != nil {
		return "", "", err
	}
	if verifier, err = scramVerifier(password); err != nil {
		return "", "", err
	}
	return password, verifier, nil
}

// scramVerifier computes the SCRAM-SHA-256 verifier Postgres stores for a
// password (RFC 5802/7677, the format of pg_authid.rolpassword). Sending the
// verifier instead of the password in CREATE/ALTER ROLE means the plaintext
// never reaches the server, so it cannot land in its statement log or in an
// error that echoes the SQL. Postgres stores a verifier it is given as is,
// whatever password_encryption says, and pg_hba's md5 method also accepts a
// role whose stored password is a SCRAM verifier (it runs SCRAM instead).
func scramVerifier(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("random salt: %w", err)
	}
	return scramVerifierWithSalt(password, salt, scramIterations)
}

func scramVerifierWithSalt(password string, salt []byte, iter int) (string, error) {
	// The password is hex, so SASLprep leaves it unchanged.
	salted, err := pbkdf2.Key(sha256.New, password, salt, iter, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("derive SCRAM key: %w", err)
	}
	clientKey := hmacSHA256(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := hmacSHA256(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iter, b64(salt), b64(storedKey[:]), b64(serverKey)), nil
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
