package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/labstack/echo/v4"
)

// decodeJSON reads the whole (capped) body and decodes it into v. Unknown
// fields are ignored, because Heroku adds fields without notice. Text that is
// not JSON is EMALFORMED (400); JSON whose fields have the wrong types is
// EINVALID (422) naming the field, because Heroku shows a 422's message to
// the customer; a body over the cap is ETOOLARGE (413). Reading everything
// first means an oversized body is refused even if its start decodes.
func (s *server) decodeJSON(c echo.Context, v any) error {
	body, err := readBody(c.Request())
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return s.tooLarge()
		}
		return addon.Wrap(addon.EMALFORMED, err, "The request body could not be read.")
	}
	// Unmarshal checks the whole text is valid JSON before it decodes
	// anything, so malformed text is a *json.SyntaxError (EMALFORMED below)
	// and a separate json.Valid pass would only scan the body twice.
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			if te.Field == "" {
				return addon.Wrap(addon.EINVALID, err, "The request body must be a JSON object.")
			}
			return addon.Wrap(addon.EINVALID, err, "The %s field must be a JSON %s.", te.Field, jsonKind(te.Type))
		}
		return addon.Wrap(addon.EMALFORMED, err, "The request body is not valid JSON.")
	}
	return nil
}

// jsonKind names the JSON type that decodes into t, for error messages.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "value"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return jsonKind(t.Elem())
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Struct, reflect.Map:
		return "object"
	default:
		return "value"
	}
}

// readBody reads the whole body into a buffer sized by Content-Length when
// the caller declared one (limitBody has already refused one over the cap),
// so a provision call's body is read with one allocation, not io.ReadAll's
// doubling.
func readBody(r *http.Request) ([]byte, error) {
	if r.ContentLength <= 0 {
		return io.ReadAll(r.Body)
	}
	buf := bytes.NewBuffer(make([]byte, 0, r.ContentLength+1))
	_, err := buf.ReadFrom(r.Body)
	return buf.Bytes(), err
}
