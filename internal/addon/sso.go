package addon

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Nonces remembers single-use values, such as the tokens of Heroku's single
// sign-on, for as long as they could be replayed. A used SSO token must be
// refused by every web dyno, not only the one that saw it first, so the
// implementation is shared storage (Postgres), never process memory.
type Nonces interface {
	// Claim records key as used until the given time and reports whether
	// this call was the first to claim it. Concurrent claims of one key
	// return true exactly once. A key whose time has passed may be claimed
	// again (it can no longer be replayed); implementations may forget
	// expired keys at any time.
	Claim(ctx context.Context, key string, until time.Time) (claimed bool, err error)
	// Unclaim gives a claim back, so key can be claimed again (not
	// Release: the store's leases already have that name). Only the caller
	// whose Claim returned true may give the key back, and only when what
	// the claim admitted did not happen: a sign-in that claimed its token
	// and then failed (a database blip) gives the token back, so the
	// customer resubmitting the same form is not refused as a replay.
	// Unclaiming a key that is not claimed is not an error.
	Unclaim(ctx context.Context, key string) error
}

// maxIdentity bounds the user id and email recorded for a sign-in, so a
// hostile form cannot fill the audit trail.
const maxIdentity = 256

// SignIn records, in the add-on's audit trail, that a Heroku user opened the
// add-on's dashboard through single sign-on, so an operator can answer "who
// looked at (or rotated) this add-on?". The caller has already checked
// Heroku's token. An unknown add-on is ENOTFOUND; one that is deprovisioned
// or being deprovisioned is EFORBIDDEN: its dashboard would show credentials
// of a resource that is gone or going.
func (s *Service) SignIn(ctx context.Context, id ID, userID, email string) (*Addon, error) {
	who := identity(userID, email)
	if err := s.store.RecordSignIn(ctx, id, s.now(), "signed in through Heroku: "+who); err != nil {
		return nil, err
	}
	return s.store.Get(ctx, id)
}

// identity describes the signed-in user for the audit trail, keeping only
// printable characters so a posted value cannot forge extra log lines.
func identity(userID, email string) string {
	userID, email = printable(userID), printable(email)
	switch {
	case userID == "" && email == "":
		return "user unknown (Heroku sent neither user_id nor email)"
	case email == "":
		return fmt.Sprintf("user %s", userID)
	case userID == "":
		return email
	}
	return fmt.Sprintf("%s (user %s)", email, userID)
}

// printable drops control characters and cuts s to at most maxIdentity
// bytes, on a character boundary: half a character is not UTF-8, which
// Postgres refuses, and the sign-in would fail.
func printable(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, strings.TrimSpace(s))
	if len(s) > maxIdentity {
		cut := maxIdentity
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}
