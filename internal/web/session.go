package web

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/secret"
	"github.com/labstack/echo/v4"
)

// This file is the customer's dashboard session: what single sign-on hands
// the browser, and what every dashboard request must bring back.
//
// A session is a cookie sealed (AES-256-GCM, so it is both secret and
// tamper-proof) with keys derived from ENCRYPTION_KEY, so every web dyno
// can open a session any other dyno issued and no new variable is needed.
// Each ENCRYPTION_KEY entry gives one session key (HKDF-SHA256, labelled, so
// a session key is never the key that seals database columns); the first
// seals, any opens. Rotating ENCRYPTION_KEY the documented way (new key
// first, old key kept until re-encryption is done) keeps sessions valid;
// removing a key ends the sessions it sealed. Such a session is refused with
// a 401 that tells the customer to open the add-on from Heroku again, and
// the refusal is logged, so a key removed too early is visible, never silent.

// DefaultSessionTTL is how long a dashboard session lasts when
// Options.SessionTTL is zero. Short: the customer comes back through
// Heroku's dashboard, which signs them in again in one click.
const DefaultSessionTTL = 30 * time.Minute

// sessionCookie is the name of the session cookie. Its Path is the one
// resource's dashboard, so a browser signed in to several add-ons keeps one
// session per add-on and sends each only to its own pages.
const sessionCookie = "kiln_session"

// sessionLabel is the HKDF info string of session keys. Changing it ends
// every session, which is how a future format change would be rolled out.
const sessionLabel = "kiln dashboard session v1"

// session is what a dashboard session carries. It is scoped to one add-on.
type session struct {
	Resource   addon.ID `json:"rid"`
	UserID     string   `json:"uid,omitempty"`
	Email      string   `json:"email,omitempty"`
	App        string   `json:"app,omitempty"`
	ContextApp string   `json:"capp,omitempty"`
	// Verified says the user id and email were covered by Heroku's token
	// (user_scoped_resource_token), not just posted beside it.
	Verified bool `json:"ver,omitempty"`
	// CSRF is the token every dashboard form must post back.
	CSRF    string `json:"csrf"`
	Expires int64  `json:"exp"`
}

// sessions issues and opens session cookies.
type sessions struct {
	keys *secret.Keyring // nil when no key was configured: nothing is issued or accepted
	ttl  time.Duration
}

// newSessions derives the session keys from the raw ENCRYPTION_KEY keys,
// newest first.
func newSessions(raw [][]byte, ttl time.Duration) (*sessions, error) {
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	ss := &sessions{ttl: ttl}
	if len(raw) == 0 {
		return ss, nil
	}
	derived := make([][]byte, 0, len(raw))
	for i, k := range raw {
		if len(k) == 0 {
			return nil, fmt.Errorf("web: session key %d is empty", i+1)
		}
		d, err := hkdf.Key(sha256.New, k, nil, sessionLabel, 32)
		if err != nil {
			return nil, fmt.Errorf("web: derive session key %d: %w", i+1, err)
		}
		derived = append(derived, d)
	}
	keys, err := secret.New(derived)
	if err != nil {
		return nil, fmt.Errorf("web: session keys: %w", err)
	}
	ss.keys = keys
	return ss, nil
}

// ready reports whether sessions can be issued at all.
func (ss *sessions) ready() bool { return ss.keys != nil }

// issue seals s (with a fresh CSRF token and expiry) into the resource's
// session cookie.
func (ss *sessions) issue(c echo.Context, s session, now time.Time) error {
	csrf, err := randomToken()
	if err != nil {
		return err
	}
	s.CSRF = csrf
	s.Expires = now.Add(ss.ttl).Unix()
	plain, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("web: encode session: %w", err)
	}
	sealed, err := ss.keys.Seal(plain)
	if err != nil {
		return fmt.Errorf("web: seal session: %w", err)
	}
	c.SetCookie(&http.Cookie{
		Name:     sessionCookie,
		Value:    base64.RawURLEncoding.EncodeToString(sealed),
		Path:     dashboardPath(s.Resource),
		MaxAge:   int(ss.ttl / time.Second),
		HttpOnly: true,
		Secure:   secure(c),
		// Lax, not Strict: Heroku's dashboard posts the sign-in from another
		// site and the redirect that follows must carry the cookie.
		SameSite: http.SameSiteLaxMode,
	})
	return nil
}

// sessionFailure says why a request brought no usable session.
type sessionFailure int

const (
	sessionMissing sessionFailure = iota + 1
	sessionUnreadable
	sessionExpired
	sessionOtherAddon
)

// open returns the request's session for the add-on id, or the reason there
// is none. Every session cookie the request carries is tried, so a stray
// cookie cannot shadow a good one.
func (ss *sessions) open(c echo.Context, id addon.ID, now time.Time) (*session, sessionFailure) {
	why := sessionMissing
	for _, ck := range c.Request().Cookies() {
		if ck.Name != sessionCookie {
			continue
		}
		s, w := ss.openOne(ck.Value, id, now)
		if s != nil {
			return s, 0
		}
		why = max(why, w)
	}
	return nil, why
}

func (ss *sessions) openOne(value string, id addon.ID, now time.Time) (*session, sessionFailure) {
	if ss.keys == nil {
		return nil, sessionUnreadable
	}
	sealed, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil {
		return nil, sessionUnreadable
	}
	plain, err := ss.keys.Open(sealed)
	if err != nil {
		return nil, sessionUnreadable
	}
	var s session
	if err := json.Unmarshal(plain, &s); err != nil || s.Resource == "" || s.CSRF == "" {
		return nil, sessionUnreadable
	}
	if now.Unix() >= s.Expires {
		return nil, sessionExpired
	}
	if s.Resource != id {
		return nil, sessionOtherAddon
	}
	return &s, 0
}

// errSession is the refusal for a request without a usable session:
// 401 when there is none (sign in again), 403 when it belongs to another
// add-on. The messages tell a customer what to do and reveal nothing.
func errSession(why sessionFailure) error {
	switch why {
	case sessionOtherAddon:
		return addon.Errorf(addon.EFORBIDDEN, "Your session is for another add-on. Open this add-on from your Heroku dashboard to see it.")
	case sessionExpired:
		return addon.Errorf(addon.EUNAUTHORIZED, "Your session has expired. Open the add-on again from your Heroku dashboard.")
	case sessionUnreadable:
		return addon.Errorf(addon.EUNAUTHORIZED, "Your session is no longer valid. Open the add-on again from your Heroku dashboard.")
	default:
		return addon.Errorf(addon.EUNAUTHORIZED, "Please sign in: open the add-on from your Heroku dashboard.")
	}
}

// randomToken is 32 random bytes, base64url.
func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("web: random token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// secure reports whether the browser reached Kiln over TLS: directly, or
// through Heroku's router, which terminates TLS and says so in
// X-Forwarded-Proto. Cookies are then marked Secure. The header is read
// whoever sent it (Echo's Scheme trusts it only from private addresses,
// and Heroku does not document the router's): a forged header can only make
// the sender's own cookie stricter.
func secure(c echo.Context) bool {
	r := c.Request()
	if r.TLS != nil {
		return true
	}
	proto := r.Header.Values(echo.HeaderXForwardedProto)
	if len(proto) == 0 {
		return false
	}
	last := proto[len(proto)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	return strings.EqualFold(strings.TrimSpace(last), "https")
}

// dashboardPath is the dashboard of one add-on; its session cookie is
// scoped to it.
func dashboardPath(id addon.ID) string { return "/dashboard/resources/" + string(id) }
