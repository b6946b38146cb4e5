package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/labstack/echo/v4"
)

// This file refuses input Postgres cannot store: a NUL byte (text columns
// and jsonb refuse it) or bytes that are not UTF-8 (the database's
// encoding). Such input would otherwise reach a query and come back as a
// database error; here it is a 422 that names the field, on every
// endpoint, whatever it takes: path parameters, the query string, forms
// and JSON bodies (keys and string values at any depth). Postgres's own
// refusal codes are mapped too (internal/postgres), for input that gets
// past this check some other way.

// maxEchoedName bounds a field name repeated in a refusal.
const maxEchoedName = 64

// refuseUnstorable is the middleware; it runs after the body cap, so it
// never reads more than a handler would.
func (s *server) refuseUnstorable(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		names, values := c.ParamNames(), c.ParamValues()
		for i, name := range names {
			if i < len(values) {
				if err := storable("The "+name+" in the path", values[i]); err != nil {
					return err
				}
			}
		}
		if err := storableValues("query parameter", c.QueryParams()); err != nil {
			return err
		}
		req := c.Request()
		if req.Body == nil || req.Body == http.NoBody {
			return next(c)
		}
		mt, _, _ := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
		switch {
		case mt == echo.MIMEApplicationForm:
			form, err := c.FormParams()
			if err != nil {
				var tooBig *http.MaxBytesError
				if errors.As(err, &tooBig) {
					return s.tooLarge()
				}
				return addon.Wrap(addon.EMALFORMED, err, "The form could not be read.")
			}
			if err := storableValues("form field", form); err != nil {
				return err
			}
		case mt == "" || mt == echo.MIMEApplicationJSON || strings.HasSuffix(mt, "+json"):
			body, err := readBody(req)
			if err != nil {
				var tooBig *http.MaxBytesError
				if errors.As(err, &tooBig) {
					return s.tooLarge()
				}
				return addon.Wrap(addon.EMALFORMED, err, "The request body could not be read.")
			}
			req.Body = io.NopCloser(bytes.NewReader(body))
			req.ContentLength = int64(len(body))
			if err := storableJSON(body); err != nil {
				return err
			}
		}
		return next(c)
	}
}

// storable refuses a value Postgres cannot store; what names the field
// ("The name field").
func storable(what, v string) error {
	switch {
	case strings.IndexByte(v, 0) >= 0:
		return addon.Errorf(addon.EINVALID, "%s contains a NUL byte (\\u0000), which cannot be stored; remove it.", what)
	case !utf8.ValidString(v):
		return addon.Errorf(addon.EINVALID, "%s is not valid UTF-8 text, which cannot be stored.", what)
	}
	return nil
}

func storableValues(kind string, vs map[string][]string) error {
	for name, list := range vs {
		if err := storable("A "+kind+" name", name); err != nil {
			return err
		}
		for _, v := range list {
			if err := storable("The "+kind+" "+quoteName(name), v); err != nil {
				return err
			}
		}
	}
	return nil
}

// quoteName quotes a field name for a message, cut to maxEchoedName.
func quoteName(name string) string {
	return strconv.Quote(addon.Clip(name, maxEchoedName))
}

// jsonFrame is one open object or array while walking a JSON body.
type jsonFrame struct {
	object  bool
	wantKey bool
	key     string
	index   int
}

// storableJSON walks a JSON body's tokens and refuses the first key or
// string value Postgres cannot store, naming it by its path (options.plan,
// items[2]). Invalid UTF-8 is found in the raw bytes, because the decoder
// silently replaces it. A body that is not JSON is left to the handler,
// which says so.
func storableJSON(body []byte) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var stack []*jsonFrame
	// path names the current value; for a key (ofKey), the object that
	// holds it.
	path := func(ofKey bool) string {
		var b strings.Builder
		for i, f := range stack {
			switch {
			case ofKey && i == len(stack)-1:
			case f.object:
				if b.Len() > 0 {
					b.WriteByte('.')
				}
				b.WriteString(f.key)
			default:
				b.WriteString("[" + strconv.Itoa(f.index) + "]")
			}
		}
		return addon.Clip(b.String(), maxEchoedName)
	}
	done := func() { // a value ended: move the innermost container on
		if n := len(stack); n > 0 {
			if top := stack[n-1]; top.object {
				top.wantKey = true
			} else {
				top.index++
			}
		}
	}
	for {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return nil // io.EOF, or not JSON: the handler's decoder answers that
		}
		raw := body[start:dec.InputOffset()]
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				stack = append(stack, &jsonFrame{object: v == '{', wantKey: v == '{'})
			default:
				stack = stack[:len(stack)-1]
				done()
			}
		case string:
			if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].wantKey {
				top := stack[n-1]
				if bad(v, raw) {
					where := "A key of the request body"
					if p := path(true); p != "" {
						where = "A key of the " + p + " field"
					}
					return storable(where, badValue(v, raw))
				}
				top.key, top.wantKey = v, false
				continue
			}
			if bad(v, raw) {
				field := "The request body"
				if p := path(false); p != "" {
					field = "The " + p + " field"
				}
				return storable(field, badValue(v, raw))
			}
			done()
		default:
			done()
		}
	}
}

// bad reports whether a decoded string (or its raw JSON text) holds what
// Postgres refuses.
func bad(decoded string, raw []byte) bool {
	return strings.IndexByte(decoded, 0) >= 0 || !utf8.Valid(raw)
}

// badValue is what storable should see: the decoded value when it has the
// NUL, the raw text when only that shows the invalid UTF-8.
func badValue(decoded string, raw []byte) string {
	if strings.IndexByte(decoded, 0) >= 0 {
		return decoded
	}
	return string(raw)
}
