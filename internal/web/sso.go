package web

import (
	"context"
	"crypto/sha1" //nolint:gosec // Heroku defines resource_token as SHA-1; Kiln checks it, it does not choose it.
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/secret"
	"github.com/labstack/echo/v4"
)

// This file is Heroku's single sign-on: the customer's browser posts a form
// from Heroku's dashboard to POST /sso/login, and Kiln answers with a
// session for that one add-on and a redirect to its dashboard.

// SSOPath is the manifest's sso_url path.
const SSOPath = "/sso/login"

// How far a sign-in's timestamp may be from Kiln's clock. Heroku's rule is
// five minutes old at most; a minute ahead allows for clock skew and no more.
const (
	ssoMaxAge    = 5 * time.Minute
	ssoMaxFuture = time.Minute
)

// navDataCookie is the cookie Heroku asks providers to set from the posted
// nav-data field.
const navDataCookie = "heroku-nav-data"

// maxNavData bounds the nav-data cookie, which must fit a browser's 4 KiB
// cookie limit together with its attributes.
const maxNavData = 3500

// ssoForm is the sign-in form as Heroku posts it. resource_token and
// resource_id have the legacy names token and id as fallbacks.
type ssoForm struct {
	ResourceID string
	Timestamp  string
	Token      string // resource_token: hex(sha1(id:salt:timestamp))
	UserToken  string // user_scoped_resource_token: hex(sha256(id:salt:timestamp:user_id:email))
	UserID     string
	Email      string
	App        string
	ContextApp string
	NavData    string
}

func readSSOForm(c echo.Context) (ssoForm, error) {
	req := c.Request()
	if err := req.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return ssoForm{}, err
		}
		return ssoForm{}, addon.Wrap(addon.EMALFORMED, err, "The sign-in form could not be read.")
	}
	// Only the body counts: tokens in a query string end up in logs.
	f := req.PostForm
	first := func(names ...string) string {
		for _, n := range names {
			if v := strings.TrimSpace(f.Get(n)); v != "" {
				return v
			}
		}
		return ""
	}
	return ssoForm{
		ResourceID: first("resource_id", "id"),
		Timestamp:  first("timestamp"),
		Token:      strings.ToLower(first("resource_token", "token")),
		UserToken:  strings.ToLower(first("user_scoped_resource_token")),
		UserID:     f.Get("user_id"),
		Email:      f.Get("email"),
		App:        f.Get("app"),
		ContextApp: f.Get("context_app"),
		NavData:    f.Get("nav-data"),
	}, nil
}

// resourceToken is Heroku's resource_token for an add-on and timestamp.
func resourceToken(id, salt, timestamp string) string {
	sum := sha1.Sum([]byte(id + ":" + salt + ":" + timestamp)) //nolint:gosec // see import
	return hex.EncodeToString(sum[:])
}

// userToken is Heroku's user_scoped_resource_token.
func userToken(id, salt, timestamp, userID, email string) string {
	sum := sha256.Sum256([]byte(id + ":" + salt + ":" + timestamp + ":" + userID + ":" + email))
	return hex.EncodeToString(sum[:])
}

// errBadToken is the one answer to a sign-in whose token does not verify,
// whatever was wrong with it, so a caller probing the endpoint learns
// nothing.
var errBadToken = addon.Errorf(addon.EFORBIDDEN, "Single sign-on failed: the token is not valid. Open the add-on again from your Heroku dashboard.")

// ssoLogin handles POST /sso/login.
//
// Both of Heroku's tokens are accepted, the user-scoped one preferred: it
// also proves who the user is. Both are compared in constant time, always,
// so timing does not say which one failed. Once a token verifies, its
// timestamp must be within five minutes in the past and one in the future,
// and the token must not have been used before, on any dyno: used tokens
// are claimed in Postgres (addon.Nonces) until they expire. A sign-in
// claims its resource token too, even when it verified with the user-scoped
// one, so a captured form cannot be replayed with the user-scoped token
// stripped; a second user signing in to the same add-on within the same
// second still gets in, through their own user-scoped token. A sign-in
// that fails after its claim (a database blip) gives back the claim it got
// in on (see unclaim), so the customer can resubmit the same form; a
// sign-in that succeeded stays claimed and cannot be replayed.
func (s *server) ssoLogin(c echo.Context) error {
	if s.ssoSalt == "" || !s.sessions.ready() || s.nonces == nil {
		// Fail closed: an empty salt would make every token computable, and
		// without nonces replays could not be refused.
		s.log.Error("single sign-on is not configured (ADDON_SSO_SALT, ENCRYPTION_KEY or the nonce store is missing)", "request_id", requestIDOf(c))
		return addon.Errorf(addon.EUNAVAILABLE, "Single sign-on is not available right now.")
	}
	f, err := readSSOForm(c)
	if err != nil {
		return err
	}
	rt := resourceToken(f.ResourceID, s.ssoSalt, f.Timestamp)
	userOK := secret.Equal(f.UserToken, userToken(f.ResourceID, s.ssoSalt, f.Timestamp, f.UserID, f.Email))
	resourceOK := secret.Equal(f.Token, rt)
	if f.ResourceID == "" || f.Timestamp == "" || !userOK && !resourceOK {
		return errBadToken
	}
	ts, err := strconv.ParseInt(f.Timestamp, 10, 64)
	if err != nil {
		return errBadToken
	}
	signed, now := time.Unix(ts, 0), time.Now()
	switch {
	case now.Sub(signed) > ssoMaxAge:
		return addon.Errorf(addon.EFORBIDDEN, "Single sign-on failed: the sign-in has expired. Open the add-on again from your Heroku dashboard.")
	case signed.Sub(now) > ssoMaxFuture:
		return addon.Errorf(addon.EFORBIDDEN, "Single sign-on failed: the sign-in is dated in the future. Check the clocks, then open the add-on again from your Heroku dashboard.")
	}
	// A claim lasts as long as the token would be accepted, plus the skew
	// allowance, so no dyno with a slightly slow clock can take it again.
	until := signed.Add(ssoMaxAge + ssoMaxFuture)
	ctx := c.Request().Context()
	rtKey := nonceKey("rt", rt)
	rtClaimed, err := s.nonces.Claim(ctx, rtKey, until)
	if err != nil {
		return err
	}
	// admitted is the claim this sign-in gets in on, the one given back if
	// it then fails.
	admitted, fresh := rtKey, rtClaimed
	if userOK {
		admitted = nonceKey("ut", f.UserToken)
		if fresh, err = s.nonces.Claim(ctx, admitted, until); err != nil {
			return err
		}
	}
	if !fresh {
		s.log.Warn("single sign-on replay refused", "request_id", requestIDOf(c), "addon", f.ResourceID)
		return addon.Errorf(addon.EFORBIDDEN, "Single sign-on failed: this sign-in was already used. Open the add-on again from your Heroku dashboard.")
	}
	if err := s.signIn(c, f, userOK, now); err != nil {
		s.unclaim(c, admitted)
		return err
	}
	return nil
}

// ssoUnclaimTimeout bounds giving back a failed sign-in's claim.
const ssoUnclaimTimeout = 2 * time.Second

// unclaim gives back the claim a sign-in got in on when the sign-in then
// failed (a database blip, the browser gone), so resubmitting the same
// form works instead of being refused as a replay. Only a claim this
// request won is given back, and only the one it was admitted on: a
// sign-in admitted by its user-scoped token keeps the resource token
// claimed, since that claim also stops the form being replayed with the
// user-scoped token stripped, for this user and any other who signed in
// in the same second, and the resubmitted form gets in on its user-scoped
// token anyway. (A failed resource-token-only sign-in does give the
// resource token back; a user-scoped sign-in to the same add-on in that
// same second, which relied on that claim, could then be replayed once
// with its user-scoped token stripped.) The request's context may be what
// failed, so this one is not cancelled with it. A failure here is logged,
// not answered: the customer gets the sign-in's own error, and at worst a
// resubmitted form is refused as before.
func (s *server) unclaim(c echo.Context, key string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), ssoUnclaimTimeout)
	defer cancel()
	if err := s.nonces.Unclaim(ctx, key); err != nil {
		s.log.Warn("single sign-on failed and its token could not be given back; resubmitting the form will be refused as a replay",
			"request_id", requestIDOf(c), "err", err)
	}
}

// signIn is the rest of a sign-in once its token is verified and claimed:
// the audit trail, the session and the redirect to the dashboard. An
// error leaves the response unwritten.
func (s *server) signIn(c echo.Context, f ssoForm, userOK bool, now time.Time) error {
	userID, email := f.UserID, f.Email
	if !userOK {
		// The resource token does not cover who the user is: record what
		// was posted, marked as such.
		userID, email = unverified(userID), unverified(email)
	}
	// The token covers the id as Heroku spelt it; from here on it is the
	// add-on's ID.
	id, err := addon.ParseExistingID(f.ResourceID)
	if err != nil {
		return err
	}
	if _, err := s.svc.SignIn(c.Request().Context(), id, userID, email); err != nil {
		return err
	}
	err = s.sessions.issue(c, session{
		Resource:   id,
		UserID:     f.UserID,
		Email:      f.Email,
		App:        f.App,
		ContextApp: f.ContextApp,
		Verified:   userOK,
	}, now)
	if err != nil {
		return err
	}
	c.SetCookie(&http.Cookie{
		Name:     navDataCookie,
		Value:    cookieSafe(f.NavData),
		Path:     "/",
		Secure:   secure(c),
		SameSite: http.SameSiteLaxMode,
	})
	s.log.Info("single sign-on", "request_id", requestIDOf(c), "addon", id, "user_id", f.UserID, "user_scoped", userOK)
	return c.Redirect(http.StatusSeeOther, dashboardPath(id))
}

func unverified(v string) string {
	if v == "" {
		return ""
	}
	return v + " (unverified)"
}

// nonceKey is what is claimed for a used token: a hash, so the nonce table
// holds no token.
func nonceKey(kind, token string) string {
	sum := sha256.Sum256([]byte(token))
	return "sso:" + kind + ":" + hex.EncodeToString(sum[:])
}

// cookieSafe returns v unchanged when it is a valid cookie value (Heroku's
// nav-data is base64) and URL-escaped otherwise, so no byte is silently
// dropped; an oversized value is cut.
func cookieSafe(v string) string {
	if len(v) > maxNavData {
		v = v[:maxNavData]
	}
	for i := 0; i < len(v); i++ {
		b := v[i]
		if b < 0x21 || b > 0x7e || b == '"' || b == ',' || b == ';' || b == '\\' {
			return url.QueryEscape(v)
		}
	}
	return v
}
