package http

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries Kiln's signature on every request to the
// partner's service.
const SignatureHeader = "Kiln-Signature"

// IdempotencyHeader carries a key that is the same for every retry of one
// step (one create, one plan change, one rotation, one delete), so the
// service can recognise a retry of a request it already acted on.
const IdempotencyHeader = "Idempotency-Key"

// Tolerance is how old (or how far in the future) a signature's timestamp
// may be before the service should refuse it: it bounds how long a
// captured request can be replayed.
const Tolerance = 5 * time.Minute

// Payload is the exact string that is signed: the timestamp, the method and
// the path (as sent in the request line, query included if any), and the
// raw body, joined so that none can be moved into another.
func Payload(t int64, method, path string, body []byte) []byte {
	p := make([]byte, 0, 32+len(method)+len(path)+len(body))
	p = strconv.AppendInt(p, t, 10)
	p = append(p, '.')
	p = append(p, method...)
	p = append(p, ' ')
	p = append(p, path...)
	p = append(p, '.')
	return append(p, body...)
}

// Sign returns the Kiln-Signature header value for a request made at t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, Payload)>".
func Sign(secret string, t time.Time, method, path string, body []byte) string {
	ts := t.Unix()
	return "t=" + strconv.FormatInt(ts, 10) + ",v1=" + hex.EncodeToString(mac(secret, Payload(ts, method, path, body)))
}

func mac(secret string, payload []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(payload)
	return m.Sum(nil)
}

// Errors Verify returns; a service answers 401 to any of them.
var (
	ErrNoSignature  = errors.New("no Kiln-Signature header")
	ErrBadSignature = errors.New("the signature does not match")
	ErrStale        = errors.New("the signature's timestamp is outside the tolerance")
)

// Verify checks a Kiln-Signature header against the request it came with,
// as a partner's service must: the timestamp within Tolerance of now, and
// one of the v1 signatures (several are allowed, for a secret being
// changed) equal, in constant time, to the HMAC of the request under secret.
// driver-check and Kiln's tests use it; a partner's service written in Go
// can copy it.
func Verify(secret, header string, now time.Time, method, path string, body []byte) error {
	if strings.TrimSpace(header) == "" {
		return ErrNoSignature
	}
	var ts int64
	haveT := false
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return fmt.Errorf("%w: unreadable timestamp", ErrBadSignature)
			}
			ts, haveT = n, true
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	if !haveT || len(sigs) == 0 {
		return fmt.Errorf("%w: want t=<unix seconds>,v1=<hex>", ErrBadSignature)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > Tolerance || d < -Tolerance {
		return ErrStale
	}
	want := mac(secret, Payload(ts, method, path, body))
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return ErrBadSignature
}
