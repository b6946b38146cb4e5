package addon

import (
	"context"
	"strings"
	"time"
)

// This file is what operators need to find add-ons (the operator API's
// listing and look-up by name: Store.List and Store.FindByName).

// Filter narrows a listing of add-ons. Zero fields match everything; set
// fields must all match.
type Filter struct {
	State State
	Plan  string
	// Name matches the add-on's name exactly.
	Name string
	// NameContains matches names containing this text, case-insensitively.
	NameContains string
	// App matches the name of the app the add-on belongs to, as Heroku
	// reports it (GET /addons/{id}, webhooks), case-insensitively.
	App string
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
	return string(a.ID)
}

// CreatedAtCursor encodes a created_at position: the timestamp with full
// precision, "/", the id.
func CreatedAtCursor(t time.Time, id ID) string {
	return t.UTC().Format(time.RFC3339Nano) + "/" + string(id)
}

// ParseCreatedAtCursor reads a created_at Range start: an RFC 3339
// timestamp, optionally followed by "/" and an add-on id (id is "" then).
func ParseCreatedAtCursor(s string) (t time.Time, id ID, err error) {
	ts, raw, _ := strings.Cut(s, "/")
	t, perr := time.Parse(time.RFC3339Nano, ts)
	if perr != nil {
		return time.Time{}, "", Errorf(EINVALID, "The range start %q is not a timestamp like 2012-01-01T12:00:00Z.", Clip(s, MaxEchoLen))
	}
	if raw == "" {
		return t.UTC(), "", nil
	}
	if id, err = ParseID(raw); err != nil {
		return time.Time{}, "", Errorf(EINVALID, "The range start %q ends in %q, which is not an add-on id.", Clip(s, MaxEchoLen), Clip(raw, MaxEchoLen))
	}
	return t.UTC(), id, nil
}

// Get returns the add-on as recorded, or ENOTFOUND.
func (s *Service) Get(ctx context.Context, id ID) (*Addon, error) {
	return s.store.Get(ctx, id)
}

// Events returns the add-on's audit trail, oldest first.
func (s *Service) Events(ctx context.Context, id ID) ([]Event, error) {
	return s.store.Events(ctx, id)
}

// List returns one page of the add-ons matching f (see Store.List).
func (s *Service) List(ctx context.Context, f Filter, r Range) ([]*Addon, *Range, error) {
	return s.store.List(ctx, f, r)
}

// FindByName returns the live add-on with this name (see Store.FindByName).
func (s *Service) FindByName(ctx context.Context, name string) (*Addon, error) {
	return s.store.FindByName(ctx, name)
}

// CountByState counts add-ons by state, for /metrics.
func (s *Service) CountByState(ctx context.Context) (map[State]int64, error) {
	return s.store.CountByState(ctx)
}

// CountLostGrants counts add-ons failed with GrantLostReason, for
// /metrics (kiln_grants_lost).
func (s *Service) CountLostGrants(ctx context.Context) (int64, error) {
	return s.store.CountLostGrants(ctx)
}
