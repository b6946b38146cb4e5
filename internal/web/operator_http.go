package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/secret"
	"github.com/labstack/echo/v4"
)

// This file holds the HTTP rules of Heroku's API design guide as the
// operator API applies them to every answer: the version in the Accept
// header, Bearer or Basic auth with the admin password, a token-bucket rate
// limit with RateLimit-Remaining, ETags and 304s, minified JSON unless
// ?pretty=true, and errors as {"id", "message", "url"}.

// Media type and version the operator API speaks.
const (
	operatorMediaType = "application/vnd.kiln+json"
	operatorVersion   = "1"
	operatorUser      = "admin"
	opContentType     = "application/json; charset=utf-8"
	opHeaderRateLimit = "RateLimit-Remaining"
)

// Error ids of the operator API's own refusals; the others are the domain's
// codes (see errors.go). Each has a section in the documentation.
const (
	opErrMissingVersion = "missing_version"
	opErrNotAcceptable  = "not_acceptable"
	opErrBadRange       = "requested_range_not_satisfiable"
)

// opSharedBucketBudget bounds a Redis round trip for the rate limit: a slow
// Redis must not slow every operator call down.
const opSharedBucketBudget = 500 * time.Millisecond

// opHTTPError is a refusal with a status the domain has no code for (406,
// 416) or a Heroku-specific id (missing_version).
type opHTTPError struct {
	status  int
	id      string
	message string
}

func (e *opHTTPError) Error() string { return e.id + ": " + e.message }

// opErrorBody is every error answer of the operator API.
type opErrorBody struct {
	ID      string `json:"id"`
	Message string `json:"message"`
	URL     string `json:"url"`
}

// opOwnsPath reports whether the operator API answers for this request, so
// the error handler can leave its errors to it.
func opOwnsPath(c echo.Context) bool {
	p := c.Request().URL.Path
	return p == operatorPrefix || strings.HasPrefix(p, operatorPrefix+"/")
}

// answerErrors is the outermost operator middleware: it turns any error
// (and any panic) below it into the operator API's error answer, so the
// shape is the same whether a handler, a middleware or the router refused.
func (op *operatorAPI) answerErrors(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				stack := make([]byte, 8<<10)
				stack = stack[:runtime.Stack(stack, false)]
				err = addon.Wrap(addon.EINTERNAL, fmt.Errorf("panic: %v\n%s", r, stack), "Internal error.")
			}
			var he *echo.HTTPError
			if errors.As(err, &he) && he.Code == http.StatusNotFound {
				if allow := op.allowed(c.Request().URL.Path); len(allow) > 0 {
					c.Response().Header().Set(echo.HeaderAllow, strings.Join(allow, ", "))
					err = &opHTTPError{http.StatusMethodNotAllowed, "method_not_allowed",
						fmt.Sprintf("%s is not allowed here; allowed: %s.", c.Request().Method, strings.Join(allow, ", "))}
				}
			}
			if err != nil {
				op.writeError(c, err)
				err = nil
			}
		}()
		return next(c)
	}
}

// writeError answers err in the operator API's shape. The server's error
// handler calls it too, for failures that happen before the operator
// middleware runs (a body over the cap, refused by the global middleware),
// which is why it takes a token itself when the rate limiter has not run.
func (op *operatorAPI) writeError(c echo.Context, err error) {
	var he *opHTTPError
	var id, message string
	var status int
	if errors.As(err, &he) {
		id, status, message = he.id, he.status, he.message
	} else {
		id, status, message = op.srv.describe(err)
	}
	c.Set(errorIDKey, id)
	req := c.Request()
	op.srv.logFailure(c, status, id, err)
	if c.Response().Committed {
		return
	}
	h := c.Response().Header()
	if h.Get(opHeaderRateLimit) == "" {
		remaining, _, _ := op.take(req.Context(), opBucketKey(op.authenticated(req), req))
		h.Set(opHeaderRateLimit, strconv.Itoa(remaining))
	}
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		wait := addon.RetryAfter(err)
		if wait <= 0 {
			wait = defaultRetryAfter
		}
		h.Set(echo.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	}
	if werr := op.render(c, status, opErrorBody{ID: id, Message: message, URL: OperatorDocsURL + "#error-" + id}); werr != nil {
		op.log.Warn("writing the error answer failed", "request_id", requestIDOf(c), "err", werr)
	}
}

// admit authenticates the caller and takes a token from its bucket: the
// credential's bucket when the admin password is right, the client IP's
// otherwise, so guessing the password is rate limited too. Every answer
// carries RateLimit-Remaining.
func (op *operatorAPI) admit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		authed := op.authenticated(req)
		// The guessing limit every admin door shares comes first: a wrong
		// password here counts against the address on /metrics too.
		if err := op.srv.guard.check(c, !authed && req.Header.Get(echo.HeaderAuthorization) != ""); err != nil {
			return err
		}
		remaining, wait, ok := op.take(req.Context(), opBucketKey(authed, req))
		h := c.Response().Header()
		h.Set(opHeaderRateLimit, strconv.Itoa(remaining))
		if !ok {
			return &addon.Error{
				Code: addon.ERATELIMIT,
				Message: fmt.Sprintf("Rate limit reached: the operator API allows bursts of %d requests, refilled at %g a minute. Retry in %d s.",
					op.limit.Burst, op.limit.PerMinute, int(math.Ceil(wait.Seconds()))),
				RetryAfter: wait,
			}
		}
		if !authed {
			h.Add(echo.HeaderWWWAuthenticate, `Bearer realm="Kiln operator API"`)
			h.Add(echo.HeaderWWWAuthenticate, `Basic realm="Kiln operator API"`)
			if req.Header.Get(echo.HeaderAuthorization) == "" {
				return addon.Errorf(addon.EUNAUTHORIZED, "Authentication required: send the admin password as a Bearer token (or Basic, user admin).")
			}
			return addon.Errorf(addon.EUNAUTHORIZED, "Invalid credentials.")
		}
		return next(c)
	}
}

// authenticated reports whether the request carries the admin password, as
// a Bearer token or as Basic admin:<password>, compared in constant time.
// An empty admin password admits nobody.
func (op *operatorAPI) authenticated(req *http.Request) bool {
	if op.password == "" {
		return false
	}
	auth := req.Header.Get(echo.HeaderAuthorization)
	if token, ok := opCutPrefixFold(auth, "Bearer "); ok {
		return secret.Equal(strings.TrimSpace(token), op.password)
	}
	user, password, ok := req.BasicAuth()
	userOK := secret.Equal(user, operatorUser)
	passwordOK := secret.Equal(password, op.password)
	return ok && userOK && passwordOK
}

func opCutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

// opBucketKey names the caller's bucket: one for the admin credential (there
// is one password, so one bucket for all operators together), one per
// client IP for everyone else.
func opBucketKey(authed bool, req *http.Request) string {
	if authed {
		return "operator:credential:" + operatorUser
	}
	return "operator:ip:" + opClientIP(req)
}

// opClientIP is the address the request came from. Behind Heroku's router it
// is the last X-Forwarded-For entry, the one the router appended (earlier
// entries are whatever the client sent, so they are not trusted); without a
// router it is the connection's address.
//
// A request carrying several X-Forwarded-For lines had at least one put
// there by the client, and then the router's entry cannot be told from the
// client's: Heroku's legacy router appends the address to the first line,
// Router 2.0 to the last. Trusting either would let a client name a fresh
// address on every request (and so a fresh bucket: no guessing limit), or
// someone else's. Such requests all count as one client,
// opAmbiguousClient; nobody sends several lines but a client doing it on
// purpose.
func opClientIP(req *http.Request) string {
	switch xff := req.Header.Values(echo.HeaderXForwardedFor); {
	case len(xff) > 1:
		return opAmbiguousClient
	case len(xff) == 1:
		all := strings.Split(xff[0], ",")
		if ip := net.ParseIP(strings.TrimSpace(all[len(all)-1])); ip != nil {
			return ip.String()
		}
	}
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		return req.RemoteAddr
	}
	return host
}

// opAmbiguousClient is the client address of every request whose
// X-Forwarded-For lines leave it ambiguous (see opClientIP).
const opAmbiguousClient = "ambiguous-forwarded-for"

// take takes a token from key's bucket (takeToken).
func (op *operatorAPI) take(ctx context.Context, key string) (remaining int, wait time.Duration, ok bool) {
	return takeToken(ctx, op.shared, op.local, key, op.limit, time.Now(), op.log)
}

// takeToken takes a token from key's bucket in shared, or in local (this
// process's) when there is no shared or it fails: a Redis outage weakens
// a limit to per dyno instead of locking callers out or letting
// everything through. Every limit of the web process takes its tokens
// here.
func takeToken(ctx context.Context, shared Buckets, local *opMemoryBuckets, key string, l RateLimit, now time.Time, log *slog.Logger) (remaining int, wait time.Duration, ok bool) {
	if shared != nil {
		sctx, cancel := context.WithTimeout(ctx, opSharedBucketBudget)
		remaining, wait, ok, err := shared.Take(sctx, key, l.Burst, l.PerMinute)
		cancel()
		if err == nil {
			return remaining, wait, ok
		}
		if !errors.Is(err, context.Canceled) {
			log.Warn("shared rate limit unavailable; limiting per process", "key", strings.SplitN(key, ":", 2)[0], "err", err)
		}
	}
	return local.Take(key, l.Burst, l.PerMinute, now)
}

// opRequireVersion refuses requests that do not ask for a version of the
// operator API in Accept, as Heroku's API does: no version is a 400
// missing_version (defaults make versions impossible to change later), an
// unknown one a 406.
func opRequireVersion(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		versions := opAcceptedVersions(c.Request().Header.Values(echo.HeaderAccept))
		for _, v := range versions {
			if v == operatorVersion {
				return next(c)
			}
		}
		if len(versions) == 0 {
			return &opHTTPError{http.StatusBadRequest, opErrMissingVersion,
				"Please specify a version along with Kiln's media type, for example `Accept: application/vnd.kiln+json; version=1`."}
		}
		return &opHTTPError{http.StatusNotAcceptable, opErrNotAcceptable,
			fmt.Sprintf("Version %q of the operator API does not exist; ask for version 1: `Accept: application/vnd.kiln+json; version=1`.", versions[0])}
	}
}

// opAcceptedVersions returns the versions of Kiln's media type the Accept
// headers ask for, in order.
func opAcceptedVersions(accept []string) []string {
	var out []string
	for _, header := range accept {
		for _, part := range strings.Split(header, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil || mt != operatorMediaType {
				continue
			}
			if v := strings.TrimSpace(params["version"]); v != "" {
				out = append(out, v)
			}
		}
	}
	return out
}

// answer sends a successful answer: the full representation, with an ETag
// over the exact bytes sent, or 304 with no body when the caller's
// If-None-Match already names them.
func (op *operatorAPI) answer(c echo.Context, status int, v any) error {
	body, err := opEncode(v, opPretty(c))
	if err != nil {
		return addon.Wrap(addon.EINTERNAL, err, "Internal error.")
	}
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	c.Response().Header().Set("ETag", etag)
	if c.Request().Method == http.MethodGet && opETagMatches(c.Request().Header.Values("If-None-Match"), etag) {
		return c.NoContent(http.StatusNotModified)
	}
	return c.Blob(status, opContentType, body)
}

// render sends v as JSON without an ETag (errors).
func (op *operatorAPI) render(c echo.Context, status int, v any) error {
	body, err := opEncode(v, opPretty(c))
	if err != nil {
		return err
	}
	return c.Blob(status, opContentType, body)
}

// opEncode is minified JSON, or indented JSON (with a final newline, for
// terminals) when pretty.
func opEncode(v any, pretty bool) ([]byte, error) {
	if !pretty {
		return json.Marshal(v)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func opPretty(c echo.Context) bool { return c.QueryParam("pretty") == "true" }

// opETagMatches applies If-None-Match's weak comparison: "*" or any listed
// tag equal to etag, ignoring W/ prefixes.
func opETagMatches(headers []string, etag string) bool {
	for _, h := range headers {
		for _, tag := range strings.Split(h, ",") {
			tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
			if tag == "*" || tag == etag {
				return true
			}
		}
	}
	return false
}

// decodeOptional reads an optional JSON object body into v. An empty body
// is no body. Unlike Heroku's calls, unknown fields are refused: an
// operator's typo ("reson") must not vanish silently.
func (op *operatorAPI) decodeOptional(c echo.Context, v any) error {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return op.srv.tooLarge()
		}
		return addon.Wrap(addon.EMALFORMED, err, "The request body could not be read.")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if !json.Valid(body) {
		return addon.Errorf(addon.EMALFORMED, "The request body is not valid JSON.")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return addon.Wrap(addon.EINVALID, err, "The %s field must be a JSON %s.", te.Field, jsonKind(te.Type))
		}
		if errors.As(err, &te) {
			return addon.Wrap(addon.EINVALID, err, "The request body must be a JSON object.")
		}
		if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return addon.Wrap(addon.EINVALID, err, "Unknown field %s in the request body.", field)
		}
		return addon.Wrap(addon.EINVALID, err, "The request body cannot be used.")
	}
	return nil
}
