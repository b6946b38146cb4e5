package web

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"time"

	"github.com/google/uuid"
	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/secret"
	"github.com/labstack/echo/v4"
)

// headerRequestID is the answer header Heroku's API design guide asks for;
// Heroku's own services send it too, so a support ticket can quote one id.
const headerRequestID = "Request-Id"

// requestIDKey is where the request id lives in the echo context.
const requestIDKey = "kiln.request_id"

// errorIDKey is where the error handler leaves the error id it answered, so
// the request log can show why a request failed without logging its details.
const errorIDKey = "kiln.error_id"

// maxRequestIDLen bounds a caller-supplied request id (Heroku's router allows
// up to 200 characters).
const maxRequestIDLen = 200

// requestID gives every request an id and every answer a Request-Id header:
// the caller's own id when it sent a sane one, so Heroku's logs and ours can
// be joined, and a fresh uuid otherwise.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(headerRequestID)
		if !saneRequestID(id) {
			id = c.Request().Header.Get(echo.HeaderXRequestID)
		}
		if !saneRequestID(id) {
			id = uuid.NewString()
		}
		c.Set(requestIDKey, id)
		c.SetRequest(c.Request().WithContext(addon.WithRequestID(c.Request().Context(), id)))
		c.Response().Header().Set(headerRequestID, id)
		return next(c)
	}
}

// saneRequestID accepts ids that are short and made of characters that cannot
// break a log line or a header: letters, digits and - _ . : + / = @.
func saneRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r == '-', r == '_', r == '.', r == ':', r == '+', r == '/', r == '=', r == '@':
		default:
			return false
		}
	}
	return true
}

// requestIDOf returns the id the requestID middleware gave the request.
func requestIDOf(c echo.Context) string {
	id, _ := c.Get(requestIDKey).(string)
	return id
}

// logRequests writes one logfmt line per request. It hands an error to the
// error handler itself, so the status it logs is the one actually sent.
// Headers (Authorization) and bodies are never logged.
func (s *server) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err)
		}
		res := c.Response()
		status := res.Status
		if status == 0 {
			status = http.StatusOK // nothing written: net/http sends 200
		}
		level := slog.LevelInfo
		if c.Path() == "/healthz" && status < 400 {
			level = slog.LevelDebug // load balancers poll it; keep the log readable
		}
		attrs := []slog.Attr{
			slog.String("request_id", requestIDOf(c)),
			slog.String("method", c.Request().Method),
			slog.String("path", c.Request().URL.Path),
			slog.Int("status", status),
			slog.Duration("duration", time.Since(start)),
			slog.Int64("bytes", res.Size),
		}
		if id, ok := c.Get(errorIDKey).(string); ok {
			attrs = append(attrs, slog.String("error", id))
		}
		s.log.LogAttrs(c.Request().Context(), level, "request", attrs...)
		return nil
	}
}

// recoverPanic turns a panic in a handler into an EINTERNAL error (with the
// stack, for the log only), so one bad request cannot take the process down
// and the caller still gets a JSON 500.
func recoverPanic(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			r := recover()
			if r == nil {
				return
			}
			if r == http.ErrAbortHandler {
				panic(r) // net/http's deliberate abort: let it through
			}
			stack := make([]byte, 8<<10)
			stack = stack[:runtime.Stack(stack, false)]
			err = addon.Wrap(addon.EINTERNAL, fmt.Errorf("panic: %v\n%s", r, stack), "Internal error.")
		}()
		return next(c)
	}
}

// limitBody caps the request body. A declared Content-Length over the cap is
// refused before anything is read; a body that turns out longer (chunked, or
// lying) fails the read with *http.MaxBytesError, which the decoder and the
// error handler turn into the same 413.
func (s *server) limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if req.ContentLength > s.bodyLimit {
			return s.tooLarge()
		}
		if req.Body != nil && req.Body != http.NoBody {
			// The underlying writer lets net/http close the connection after
			// the answer instead of draining a huge body.
			req.Body = http.MaxBytesReader(c.Response().Writer, req.Body, s.bodyLimit)
		}
		return next(c)
	}
}

// tooLarge is the error for a body over the cap.
func (s *server) tooLarge() error {
	return addon.Errorf(addon.ETOOLARGE, "The request body is larger than %s.", byteSize(s.bodyLimit))
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}

// guessGuard is a guessing limit basicAuthGuarded applies: the admin
// doors' (AdminGuard) or the Partner API's (GuessGuard). guessed says a
// password was presented and was wrong; a non-nil error is the answer.
type guessGuard interface {
	check(c echo.Context, guessed bool) error
}

// basicAuthGuarded admits requests whose Basic credentials are user and
// any of passwords. Both halves are always compared, and every password
// every time, in constant time, so a refusal's timing says nothing about
// which part was wrong. With no passwords configured nobody gets in. The
// guard (nil: none) limits guessing: a wrong password takes a token from
// the client address's bucket, and while it is empty every request
// presenting credentials, or none, is answered 429.
func basicAuthGuarded(realm, user string, passwords []string, guard guessGuard) echo.MiddlewareFunc {
	challenge := fmt.Sprintf("Basic realm=%q", realm)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			gotUser, gotPassword, ok := c.Request().BasicAuth()
			userOK := secret.Equal(gotUser, user)
			passwordOK := secret.EqualAny(gotPassword, passwords)
			authed := ok && userOK && passwordOK && user != "" && len(passwords) > 0
			if guard != nil {
				if err := guard.check(c, ok && !authed); err != nil {
					return err
				}
			}
			if !authed {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, challenge)
				if !ok {
					return addon.Errorf(addon.EUNAUTHORIZED, "Authentication required.")
				}
				return addon.Errorf(addon.EUNAUTHORIZED, "Invalid credentials.")
			}
			return next(c)
		}
	}
}

// deadline bounds the handlers of a group, so a hung dependency turns into an
// answer the caller can retry instead of a request that never ends.
func deadline(d time.Duration) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			ctx, cancel := context.WithTimeout(c.Request().Context(), d)
			defer cancel()
			c.SetRequest(c.Request().WithContext(ctx))
			return next(c)
		}
	}
}
