// Package heroku is Kiln's client for Heroku: the OAuth token endpoint on
// id.heroku.com and the Platform API for Partners on api.heroku.com. It
// implements addon.Platform and turns every failure into a domain error, so
// the worker can decide between retrying and giving up without knowing HTTP.
//
// It is written by hand on purpose. Heroku's Go SDK (github.com/heroku/heroku-go)
// cannot be had from the module proxy this project builds with, and Kiln uses
// seven calls of it anyway (GetAddon and CreateWebhook, in watch.go, keep
// Kiln in step with Heroku): a small client whose error mapping, headers and
// logging we control (tokens never leave it) is cheaper than vendoring the
// generated SDK. Its only test double is internal/herokusim, which enforces
// what the real services enforce.
//
// Error mapping (see internal/addon/error.go):
//
//	network error, timeout, 408, 5xx  EUNAVAILABLE (RetryAfter from Retry-After)
//	429                               ERATELIMIT   (RetryAfter, default one minute)
//	401                               EUNAUTHORIZED (the caller refreshes and retries)
//	404                               ENOTFOUND
//	410                               EGONE
//	other 4xx                         EINVALID, with Heroku's message
//	4xx from the token endpoint       EINVALID: "Heroku refused the OAuth grant: …"
//
// The cause of each error is an *APIError carrying Heroku's Request-Id, so
// logs give support something to look up; tokens, codes and the client
// secret never appear in errors or logs.
package heroku

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

// Where Heroku lives unless told otherwise (HEROKU_API_URL, HEROKU_ID_URL).
const (
	DefaultAPIURL = "https://api.heroku.com"
	DefaultIDURL  = "https://id.heroku.com"
)

const (
	// defaultTimeout bounds one request when the caller brings no client:
	// long enough for a slow Heroku, short enough for a job to retry.
	defaultTimeout = 15 * time.Second
	// rateLimitWait is the back-off for a 429 without Retry-After. Heroku's
	// bucket refills at about 75 tokens a minute, so a minute buys a burst.
	rateLimitWait = time.Minute
	// maxRetryAfter caps Heroku's hint so a bogus header cannot park a job
	// for days; the provision deadline bounds the retries anyway.
	maxRetryAfter = time.Hour
	// lowRateLimit is the RateLimit-Remaining below which a warning is
	// logged, before Kiln starts getting 429s.
	lowRateLimit = 200
	maxBody      = 1 << 20
	userAgent    = "kiln/1"
	acceptAPI    = "application/vnd.heroku+json; version=3"
)

// Options configure a Client. Only ClientSecret is required.
type Options struct {
	APIURL       string // default DefaultAPIURL
	IDURL        string // default DefaultIDURL
	ClientSecret string // the add-on's OAuth client secret
	// HTTPClient sends the requests; default: a client with a 15 s timeout.
	HTTPClient *http.Client
	// Log gets one debug line per request (never a token); nil discards.
	Log *slog.Logger
}

// Client talks to Heroku on behalf of Kiln's worker. It is safe for
// concurrent use.
type Client struct {
	api, id string
	secret  string
	hc      *http.Client
	log     *slog.Logger
}

var _ addon.Platform = (*Client)(nil)

// New builds a Client.
func New(o Options) *Client {
	c := &Client{
		api:    strings.TrimRight(o.APIURL, "/"),
		id:     strings.TrimRight(o.IDURL, "/"),
		secret: o.ClientSecret,
		hc:     o.HTTPClient,
		log:    o.Log,
	}
	if c.api == "" {
		c.api = DefaultAPIURL
	}
	if c.id == "" {
		c.id = DefaultIDURL
	}
	if c.hc == nil {
		c.hc = &http.Client{Timeout: defaultTimeout}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c
}

// APIError is what Heroku answered to a failed request. It is the cause
// inside the domain errors this package returns, so logs show the status,
// Heroku's error id and the Request-Id to quote to Heroku's support.
type APIError struct {
	Op        string // "PATCH /addons/{id}/config"
	Status    int
	ID        string // Heroku's error id, e.g. "rate_limit"
	Message   string
	RequestID string
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "heroku: %s: %d", e.Op, e.Status)
	if e.ID != "" {
		b.WriteString(" " + e.ID)
	}
	if e.Message != "" {
		b.WriteString(": " + strings.TrimSpace(e.Message))
	}
	if e.RequestID != "" {
		b.WriteString(" (Request-Id " + e.RequestID + ")")
	}
	return b.String()
}

// ExchangeGrant trades the single-use grant code from a provision request
// for the add-on's tokens.
func (c *Client) ExchangeGrant(ctx context.Context, code string) (addon.Tokens, error) {
	return c.token(ctx, "grant", url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"client_secret": {c.secret},
	})
}

// RefreshTokens gets a new access token. Heroku may return the same refresh
// token; an empty one in the answer means "keep yours".
func (c *Client) RefreshTokens(ctx context.Context, refreshToken string) (addon.Tokens, error) {
	return c.token(ctx, "refresh token", url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {refreshToken},
		"client_secret": {c.secret},
	})
}

type tokenAnswer struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int64  `json:"expires_in"`
	UserID       string `json:"user_id"`
}

func (c *Client) token(ctx context.Context, what string, form url.Values) (addon.Tokens, error) {
	const op = "POST /oauth/token"
	sent := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.id+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		return addon.Tokens{}, addon.Wrap(addon.EINTERNAL, err, "Heroku's OAuth URL is not valid.")
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	status, hdr, body, err := c.send(req, op)
	if err != nil {
		return addon.Tokens{}, addon.Wrap(addon.EUNAVAILABLE, err, "Heroku's OAuth service could not be reached.")
	}
	if status/100 != 2 {
		e := apiError(op, status, hdr, body)
		switch {
		case status == http.StatusTooManyRequests, status == http.StatusRequestTimeout, status >= 500:
			return addon.Tokens{}, transient(e, hdr, sent)
		}
		return addon.Tokens{}, addon.Wrap(addon.EINVALID, e, "Heroku refused the OAuth %s: %s", what, herokuMessage(e))
	}
	var ans tokenAnswer
	if err := json.Unmarshal(body, &ans); err != nil || ans.AccessToken == "" {
		if err == nil {
			err = errors.New("no access_token in the answer")
		}
		e := &APIError{Op: op, Status: status, RequestID: hdr.Get("Request-Id"), Message: err.Error()}
		return addon.Tokens{}, addon.Wrap(addon.EINTERNAL, e, "Heroku's OAuth service gave an unreadable answer.")
	}
	// Counting from when the request was sent keeps ExpiresAt on the safe
	// side of Heroku's clock.
	return addon.Tokens{
		Access:    ans.AccessToken,
		Refresh:   ans.RefreshToken,
		ExpiresAt: sent.Add(time.Duration(ans.ExpiresIn) * time.Second).UTC(),
		UserID:    ans.UserID,
	}, nil
}

type configVar struct {
	Name  string  `json:"name"`
	Value *string `json:"value"` // null unsets
}

// SetConfig sets the add-on's config vars, or unsets those whose value is
// nil. Heroku may be told several times while provisioning.
func (c *Client) SetConfig(ctx context.Context, accessToken string, addonID addon.ID, vars map[string]*string) error {
	if len(vars) == 0 {
		return nil
	}
	list := make([]configVar, 0, len(vars))
	for k, v := range vars {
		list = append(list, configVar{Name: k, Value: v})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	body, err := json.Marshal(struct {
		Config []configVar `json:"config"`
	}{list})
	if err != nil {
		return addon.Wrap(addon.EINTERNAL, err, "Config vars could not be encoded.")
	}
	return c.platform(ctx, http.MethodPatch, string(addonID), "/config", accessToken, body)
}

// MarkProvisioned tells Heroku the add-on is ready; the app restarts with
// its config. Repeating it is harmless.
func (c *Client) MarkProvisioned(ctx context.Context, accessToken string, addonID addon.ID) error {
	return c.platform(ctx, http.MethodPost, string(addonID), "/actions/provision", accessToken, nil)
}

// MarkDeprovisioned tells Heroku an asynchronously deprovisioned add-on is
// cleaned up.
func (c *Client) MarkDeprovisioned(ctx context.Context, accessToken string, addonID addon.ID) error {
	return c.platform(ctx, http.MethodPost, string(addonID), "/actions/deprovision", accessToken, nil)
}

// platform makes one Platform API call and maps its failure.
func (c *Client) platform(ctx context.Context, method, addonID, suffix, token string, body []byte) error {
	_, err := c.platformAnswer(ctx, method, addonID, suffix, token, body)
	return err
}

// platformAnswer makes one Platform API call and returns the body of a 2xx
// answer, or the mapped failure.
func (c *Client) platformAnswer(ctx context.Context, method, addonID, suffix, token string, body []byte) ([]byte, error) {
	if addonID == "" {
		return nil, addon.Errorf(addon.EINVALID, "No add-on id to call Heroku with.")
	}
	op := method + " /addons/" + addonID + suffix
	sent := time.Now()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.api+"/addons/"+url.PathEscape(addonID)+suffix, rd)
	if err != nil {
		return nil, addon.Wrap(addon.EINTERNAL, err, "Heroku's API URL is not valid.")
	}
	req.Header.Set("Accept", acceptAPI)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("User-Agent", userAgent)
	// Heroku's own example add-on sends the JSON type on body-less actions
	// too (heroku/sudo-sandwich); the API accepts it.
	req.Header.Set("Content-Type", "application/json")
	status, hdr, rbody, err := c.send(req, op)
	if err != nil {
		return nil, addon.Wrap(addon.EUNAVAILABLE, err, "Heroku's API could not be reached.")
	}
	if status/100 == 2 {
		return rbody, nil
	}
	e := apiError(op, status, hdr, rbody)
	switch {
	case status == http.StatusTooManyRequests, status == http.StatusRequestTimeout, status >= 500:
		return nil, transient(e, hdr, sent)
	case status == http.StatusUnauthorized:
		return nil, addon.Wrap(addon.EUNAUTHORIZED, e, "Heroku refused the add-on's access token.")
	case status == http.StatusNotFound:
		return nil, addon.Wrap(addon.ENOTFOUND, e, "Heroku does not know add-on %s.", addonID)
	case status == http.StatusGone:
		return nil, addon.Wrap(addon.EGONE, e, "Heroku says add-on %s is gone.", addonID)
	}
	return nil, addon.Wrap(addon.EINVALID, e, "Heroku refused the request: %s", herokuMessage(e))
}

// send does the round trip and reads a bounded body, draining the rest so
// the connection is reused.
func (c *Client) send(req *http.Request, op string) (int, http.Header, []byte, error) {
	start := time.Now()
	res, err := c.hc.Do(req)
	if err != nil {
		c.log.Debug("heroku request failed", "op", op, "duration", time.Since(start), "err", err)
		return 0, nil, nil, fmt.Errorf("heroku: %s: %w", op, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxBody))
	rid := res.Header.Get("Request-Id")
	if err != nil {
		return 0, nil, nil, fmt.Errorf("heroku: %s: read answer (Request-Id %s): %w", op, rid, err)
	}
	remaining := res.Header.Get("RateLimit-Remaining")
	c.log.Debug("heroku request", "op", op, "status", res.StatusCode, "request_id", rid,
		"ratelimit_remaining", remaining, "duration", time.Since(start))
	if n, err := strconv.Atoi(remaining); err == nil && n < lowRateLimit {
		c.log.Warn("Heroku API rate limit running low", "ratelimit_remaining", n, "request_id", rid)
	}
	return res.StatusCode, res.Header, body, nil
}

// apiError reads Heroku's error body: {"id", "message"}, or {"id", "error"}
// as the API answers a missing version.
func apiError(op string, status int, hdr http.Header, body []byte) *APIError {
	var b struct {
		ID      string `json:"id"`
		Message string `json:"message"`
		Error   string `json:"error"`
	}
	_ = json.Unmarshal(body, &b)
	msg := b.Message
	if msg == "" {
		msg = b.Error
	}
	return &APIError{Op: op, Status: status, ID: b.ID, Message: strings.TrimSpace(msg), RequestID: hdr.Get("Request-Id")}
}

func herokuMessage(e *APIError) string {
	if e.Message != "" {
		return e.Message
	}
	return fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
}

// transient maps a 429, 408 or 5xx to a retryable domain error carrying
// Heroku's Retry-After hint.
func transient(e *APIError, hdr http.Header, now time.Time) error {
	wait, ok := parseRetryAfter(hdr.Get("Retry-After"), now)
	if e.Status == http.StatusTooManyRequests {
		if !ok {
			wait = rateLimitWait
		}
		err := addon.Wrap(addon.ERATELIMIT, e, "Heroku's API rate limit was reached.")
		err.RetryAfter = wait
		return err
	}
	err := addon.Wrap(addon.EUNAVAILABLE, e, "Heroku is unavailable (status %d).", e.Status)
	err.RetryAfter = wait
	return err
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP-date
// (RFC 9110 10.2.3). It reports false for an absent or unreadable header.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = max(t.Sub(now), 0)
	} else {
		return 0, false
	}
	return min(d, maxRetryAfter), true
}
