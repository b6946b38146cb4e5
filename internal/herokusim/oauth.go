package herokusim

import (
	"crypto/subtle"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Heroku's own words, where a public source records them.
const (
	// Expired, unknown and spent grant codes: 401 with this message, as
	// recorded in heroku/sudo-sandwich#5 ("the response body when the grant
	// code is expired"). id.heroku.com passes the Platform API's
	// /oauth/tokens 4xx answer through unchanged (heroku/identity,
	// lib/identity/auth.rb), so the body is the API's {"id", "message"}.
	// Unknown and spent codes answering the same is UNCONFIRMED.
	msgAuthorizationInvalid = "OAuth authorization invalid."
	// A wrong client secret: 401 unauthorized; the wording is UNCONFIRMED.
	msgInvalidClient = "Invalid OAuth client secret."
)

// tokenAnswer is id.heroku.com's token endpoint answer (heroku/identity).
type tokenAnswer struct {
	AccessToken  string `json:"access_token"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	UserID       string `json:"user_id"`
	SessionNonce string `json:"session_nonce"`
}

func (s *Sim) serveToken(w http.ResponseWriter, r *http.Request) {
	at := s.now()
	rid := s.requestID()
	h := w.Header()
	h.Set("Request-Id", rid)
	h.Set("RateLimit-Remaining", strconv.Itoa(s.o.RateLimit))
	if r.Method != http.MethodPost {
		writeError(w, http.StatusNotFound, "not_found", msgEndpointNotFound)
		return
	}
	kind := KindGrant
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		st := writeError(w, http.StatusBadRequest, "bad_request", "Request body could not be read as a form.")
		s.record(Call{Kind: kind, At: at, Status: st, RequestID: rid})
		return
	}
	// Like the Sinatra app behind id.heroku.com, parameters are read from
	// the query string as well as the body.
	grantType := r.Form.Get("grant_type")
	if grantType == "refresh_token" {
		kind = KindRefresh
	}
	var addonID string
	s.mu.Lock()
	if kind == KindRefresh {
		addonID = s.refresh[r.Form.Get("refresh_token")]
	} else if g := s.codes[r.Form.Get("code")]; g != nil {
		addonID = g.addonID
	}
	s.mu.Unlock()

	st, done := s.applyFault(w, kind, addonID)
	if !done {
		st = s.token(w, r, grantType)
	}
	s.record(Call{Kind: kind, AddonID: addonID, At: at, Status: st, RequestID: rid})
}

func (s *Sim) token(w http.ResponseWriter, r *http.Request, grantType string) int {
	secret := r.Form.Get("client_secret")
	if _, pass, ok := r.BasicAuth(); ok { // RFC 6749 2.3.1, which id.heroku.com honours
		secret = pass
	}
	if subtle.ConstantTimeCompare([]byte(secret), s.secret) != 1 {
		return writeError(w, http.StatusUnauthorized, "unauthorized", msgInvalidClient)
	}
	now := s.now()
	var ans tokenAnswer
	s.mu.Lock()
	var a *addonRec
	switch grantType {
	case "authorization_code", "": // id.heroku.com defaults the type
		code := r.Form.Get("code")
		g := s.codes[code]
		if g == nil || g.used || !now.Before(g.expires) {
			s.mu.Unlock()
			return writeError(w, http.StatusUnauthorized, "unauthorized", msgAuthorizationInvalid)
		}
		g.used = true
		a = s.addons[g.addonID]
		if a.code == code {
			a.code = ""
		}
		if a.refresh != "" {
			delete(s.refresh, a.refresh)
		}
		a.refresh = uuid.NewString()
		s.refresh[a.refresh] = a.id
	case "refresh_token":
		a = s.addons[s.refresh[r.Form.Get("refresh_token")]]
		if a == nil {
			s.mu.Unlock()
			return writeError(w, http.StatusUnauthorized, "unauthorized", msgAuthorizationInvalid)
		}
	default:
		s.mu.Unlock()
		// UNCONFIRMED: the API validates the grant type; 422 is its
		// status for parameters it refuses.
		return writeError(w, http.StatusUnprocessableEntity, "invalid_params", "Invalid grant_type.")
	}
	// A new access token replaces the old one, which stops working.
	if a.access != "" {
		delete(s.access, a.access)
	}
	a.access = "HRKU-" + uuid.NewString() // Heroku prefixes its OAuth tokens
	a.tokenExp = now.Add(s.o.TokenTTL)
	s.access[a.access] = &tokenRec{addonID: a.id, userID: a.userID, expires: a.tokenExp}
	ans = tokenAnswer{
		AccessToken:  a.access,
		ExpiresIn:    max(int64(s.o.TokenTTL/time.Second)-1, 0), // 28799 for 8 h, as Heroku answers
		RefreshToken: a.refresh,
		TokenType:    "Bearer",
		UserID:       a.userID,
		SessionNonce: uuid.NewString(),
	}
	s.mu.Unlock()
	return writeJSON(w, http.StatusOK, ans)
}
