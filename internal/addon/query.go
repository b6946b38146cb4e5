package addon

import (
	"context"
	"strings"
	"time"
)

// This file is what operators need to find add-ons (the operator API's
// listing and look-up by name). It is separate from Store because the
// pipeline never lists: a store that only runs the pipeline need not
// implement Finder.

// Filter narrows a listing of add-ons. Zero fields match everything; set
// fields must all match.
type Filter struct {
	State State
	Plan  string
	// Name matches the add-on's name exactly.
	Name string
	// NameContains matches names containing this text, case-insensitively.
	// Kiln records no app (Heroku sends none with the provision request),
	// so an operator looking for "the add-on of app acme" can only search
	// the add-on names, which often carry the app's name.
	NameContains string
}

// The fields a Range can page on.
const (
	RangeID        = "id"
	RangeCreatedAt = "created_at"
)

// Page sizes, as Heroku's Platform API has them: 200 unless asked, at most
// 1,000, so one call cannot load the whole table.
const (
	DefaultRangeMax = 200
	MaxRangeMax     = 1000
)

// Range is one page of a listing, in the shape of Heroku's Range header:
// the field to order by, where to start, how many, which direction. Listing
// is keyset pagination (WHERE field > start), so a page costs the same
// however deep it is and rows added meanwhile are neither skipped nor
// repeated.
type Range struct {
	// Field is RangeID or RangeCreatedAt; "" means RangeID.
	Field string
	// Start is where the page begins: "" for the first page, an add-on id
	// for RangeID, and for RangeCreatedAt a timestamp (RFC 3339) optionally
	// followed by "/" and an id to break ties (see CreatedAtCursor).
	Start string
	// Exclusive leaves the add-on at Start out (Heroku's "]start..").
	Exclusive bool
	// Max is the page size; 0 means DefaultRangeMax.
	Max int
	// Desc orders the page from the highest value down; Start is then the
	// upper bound.
	Desc bool
}

// WithDefaults fills the zero fields, so stores and adapters agree on what
// an empty Range means.
func (r Range) WithDefaults() Range {
	if r.Field == "" {
		r.Field = RangeID
	}
	if r.Max == 0 {
		r.Max = DefaultRangeMax
	}
	return r
}

// Validate checks a Range before a store runs it; the messages are written
// for the operator who sent the Range header. It expects WithDefaults first.
func (r Range) Validate() error {
	if r.Max < 1 || r.Max > MaxRangeMax {
		return Errorf(EINVALID, "The page size (max) must be between 1 and %d.", MaxRangeMax)
	}
	switch r.Field {
	case RangeID:
		if r.Start != "" && !ValidID(r.Start) {
			return Errorf(EINVALID, "The range start %q is not an add-on id.", Clip(r.Start, MaxEchoLen))
		}
	case RangeCreatedAt:
		if r.Start != "" {
			if _, _, err := ParseCreatedAtCursor(r.Start); err != nil {
				return err
			}
		}
	default:
		return Errorf(EINVALID, "Add-ons cannot be ranged by %q; use %s or %s.", Clip(r.Field, MaxEchoLen), RangeID, RangeCreatedAt)
	}
	return nil
}

// Cursor is the value of a's r.Field as a Range start: where the page after
// a begins. created_at values carry the id too, because two add-ons can be
// created in the same microsecond and a timestamp alone would skip one.
func (r Range) Cursor(a *Addon) string {
	if r.Field == RangeCreatedAt {
		return CreatedAtCursor(a.CreatedAt, a.ID)
	}
	return a.ID
}

// CreatedAtCursor encodes a created_at position: the timestamp with full
// precision, "/", the id.
func CreatedAtCursor(t time.Time, id string) string {
	return t.UTC().Format(time.RFC3339Nano) + "/" + strings.ToLower(id)
}

// ParseCreatedAtCursor reads a created_at Range start: an RFC 3339
// timestamp, optionally followed by "/" and an add-on id (id is "" then).
func ParseCreatedAtCursor(s string) (t time.Time, id string, err error) {
	ts, id, _ := strings.Cut(s, "/")
	t, perr := time.Parse(time.RFC3339Nano, ts)
	if perr != nil {
		return time.Time{}, "", Errorf(EINVALID, "The range start %q is not a timestamp like 2012-01-01T12:00:00Z.", Clip(s, MaxEchoLen))
	}
	if id != "" && !ValidID(id) {
		return time.Time{}, "", Errorf(EINVALID, "The range start %q ends in %q, which is not an add-on id.", Clip(s, MaxEchoLen), Clip(id, MaxEchoLen))
	}
	return t.UTC(), strings.ToLower(id), nil
}

// Finder finds add-ons for operators. The Postgres store implements it.
type Finder interface {
	// List returns one page of the add-ons matching f, in r's order, and
	// the Range of the next page, nil when this page is the last. Invalid
	// ranges are EINVALID.
	List(ctx context.Context, f Filter, r Range) (page []*Addon, next *Range, err error)
	// FindByName returns the add-on with this name. Heroku reuses names
	// once an add-on is gone, so a live add-on wins over deprovisioned ones
	// (the newest of those when no live one exists); two live add-ons with
	// one name are ECONFLICT, and none at all ENOTFOUND.
	FindByName(ctx context.Context, name string) (*Addon, error)
}
