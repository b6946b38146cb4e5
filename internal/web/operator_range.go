package web

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/kiln-dev/kiln/internal/addon"
)

// This file reads and writes Heroku-style Range headers:
//
//	Range: id ..                                   first page, by id, 200 a page
//	Range: id ..; max=50                           50 a page
//	Range: created_at ..; max=50, order=desc       newest first
//	Next-Range: id ]01234567-89ab-...; max=50      the page after the one received
//
// A start prefixed with "]" is exclusive. Parameters are separated by ","
// or ";". An end bound ("a..b") is refused: Heroku deprecated it, and max
// says how much to fetch.

// opAcceptRanges is the Accept-Ranges header of the listing.
const opAcceptRanges = addon.RangeID + ", " + addon.RangeCreatedAt

// opParseRange reads a Range header; "" is the first page by id. Anything it
// cannot use is a 416 naming the problem.
func opParseRange(h string) (addon.Range, error) {
	h = strings.TrimSpace(h)
	if h == "" {
		return addon.Range{}.WithDefaults(), nil
	}
	spec, params, _ := strings.Cut(h, ";")
	field, bounds, _ := strings.Cut(strings.TrimSpace(spec), " ")
	r := addon.Range{Field: field}
	bounds = strings.TrimSpace(bounds)
	if bounds != "" {
		start, end, ok := strings.Cut(bounds, "..")
		if !ok {
			return addon.Range{}, opRangeError("The range %q has no \"..\"; write it like `id ..; max=200`.", h)
		}
		if strings.TrimSpace(end) != "" {
			return addon.Range{}, opRangeError("Ranges with an end (%q) are not supported; use max to limit the page.", bounds)
		}
		start = strings.TrimSpace(start)
		if s, ok := strings.CutPrefix(start, "]"); ok {
			start, r.Exclusive = s, true
		}
		r.Start = start
	}
	for _, p := range strings.FieldsFunc(params, func(r rune) bool { return r == ',' || r == ';' }) {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch k, v = strings.TrimSpace(k), strings.TrimSpace(v); k {
		case "max":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return addon.Range{}, opRangeError("max must be a number between 1 and %d, not %q.", addon.MaxRangeMax, v)
			}
			r.Max = n
		case "order":
			switch v {
			case "asc":
				r.Desc = false
			case "desc":
				r.Desc = true
			default:
				return addon.Range{}, opRangeError("order must be asc or desc, not %q.", v)
			}
		default:
			return addon.Range{}, opRangeError("Unknown range parameter %q; ranges take max and order.", k)
		}
	}
	r = r.WithDefaults()
	if r.Field != addon.RangeID && r.Field != addon.RangeCreatedAt {
		return addon.Range{}, opRangeError("Add-ons cannot be ranged by %q; Accept-Ranges: %s.", r.Field, opAcceptRanges)
	}
	if err := r.Validate(); err != nil {
		return addon.Range{}, &opHTTPError{http.StatusRequestedRangeNotSatisfiable, opErrBadRange, addon.ErrorMessage(err)}
	}
	return r, nil
}

func opRangeError(format string, args ...any) error {
	return &opHTTPError{http.StatusRequestedRangeNotSatisfiable, opErrBadRange, fmt.Sprintf(format, args...)}
}

// opFormatRange writes r as a Next-Range header.
func opFormatRange(r addon.Range) string {
	start := r.Start
	if r.Exclusive {
		start = "]" + start
	}
	s := fmt.Sprintf("%s %s..; max=%d", r.Field, start, r.Max)
	if r.Desc {
		s += ", order=desc"
	}
	return s
}

// opContentRange says which values a page spans.
func opContentRange(r addon.Range, first, last *addon.Addon) string {
	return fmt.Sprintf("%s %s..%s", r.Field, r.Cursor(first), r.Cursor(last))
}
