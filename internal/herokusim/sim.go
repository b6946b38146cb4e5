package herokusim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kiln-dev/kiln/internal/addon"
)

// Call kinds, as recorded in the call log and matched by faults.
const (
	KindGrant       = "grant"       // POST /oauth/token, grant_type=authorization_code
	KindRefresh     = "refresh"     // POST /oauth/token, grant_type=refresh_token
	KindConfig      = "config"      // PATCH /addons/{id}/config
	KindProvision   = "provision"   // POST /addons/{id}/actions/provision
	KindDeprovision = "deprovision" // POST /addons/{id}/actions/deprovision
	KindGet         = "get"         // GET /addons/{id}
)

// Defaults mirror Heroku's published numbers, so code tested against the
// simulator meets the same limits in production.
const (
	DefaultClientSecret = "herokusim-client-secret"
	DefaultTokenTTL     = 8 * time.Hour
	DefaultGrantTTL     = 5 * time.Minute
	DefaultRateLimit    = 4500
	DefaultRateRefill   = 75 // tokens a minute
	DefaultMaxCalls     = 100_000
)

// Options configure a simulator. The zero value is usable: every field has a
// Heroku-like default.
type Options struct {
	// ClientSecret is the add-on's OAuth client secret the token endpoint
	// demands; default DefaultClientSecret.
	ClientSecret string
	// TokenTTL is how long access tokens live (Heroku: 8 h). The token
	// endpoint reports one second less, as Heroku's 28799 does.
	TokenTTL time.Duration
	// GrantTTL is how long a grant code can be exchanged (Heroku: 5 min).
	GrantTTL time.Duration
	// Log receives one debug line per call; never tokens. Nil discards.
	Log *slog.Logger
	// RateLimit is the size of each user's token bucket (Heroku: about
	// 4,500) and RateRefill the tokens added a minute (about 75).
	RateLimit  int
	RateRefill float64
	// NoRateLimit turns the bucket off, for benchmarks that would drain it.
	NoRateLimit bool
	// MaxCalls bounds the call log so a long-running simulator does not
	// grow without end: at least the last MaxCalls calls are kept.
	MaxCalls int
	// Now is the clock, so tests can expire grants and refill buckets
	// without sleeping. Nil means time.Now.
	Now func() time.Time
	// OnCall, when set, is called after each call is recorded, outside the
	// simulator's lock, for tests that stream calls or count them.
	OnCall func(Call)
}

// Call is one request that reached the simulator, as tests assert on it.
type Call struct {
	Kind      string    `json:"kind"`
	AddonID   string    `json:"addon_id"` // the add-on named (by id or name) or owning the code; "" if unknown at the token endpoint
	At        time.Time `json:"at"`       // when the request arrived
	Status    int       `json:"status"`   // the status answered
	RequestID string    `json:"request_id"`
}

// AddonState is an add-on as Heroku sees it, for tests to check what Kiln
// pushed and whether it marked the add-on provisioned.
type AddonState struct {
	ID     string            `json:"id"`
	Name   string            `json:"name"`
	State  string            `json:"state"` // provisioning, provisioned or deprovisioned
	Plan   string            `json:"plan"`  // the plan slug Heroku holds
	Config map[string]string `json:"config"`
}

// Fault makes matching calls misbehave, to test Kiln's retries, backoff and
// crash recovery. A fault matches calls of Kind (any when "") for AddonID
// (any when ""). Of the faults that match, the first injected applies.
type Fault struct {
	Kind    string `json:"kind"`
	AddonID string `json:"addon_id"`
	// Times is how many matching calls the fault applies to; 0 means until
	// ClearFaults.
	Times int `json:"times"`
	// Status, when non-zero, answers the call with this status and a
	// Heroku-style error body instead of processing it.
	Status int `json:"status"`
	// RetryAfter is sent verbatim as the Retry-After header with Status:
	// seconds ("3") or an HTTP-date.
	RetryAfter string `json:"retry_after"`
	// Message overrides the error body's message.
	Message string `json:"message"`
	// Delay holds the call this long before it is answered.
	Delay time.Duration `json:"-"`
	// Hold blocks the call until the channel is closed (or ClearFaults or
	// Close): the test can kill the caller meanwhile. The call is then
	// processed normally, as Heroku would process a request it received.
	Hold <-chan struct{} `json:"-"`

	control bool // held until POST /_sim/release
}

type fault struct {
	Fault
	left int // calls left; -1: until cleared
}

type addonRec struct {
	id, name, appID, appName, planID, userID string
	plan                                     string // slug; "" is DefaultPlan
	state                                    string
	config                                   map[string]string
	createdAt, updatedAt                     time.Time

	code     string // the unused grant code, "" once spent
	access   string // the current access token
	refresh  string
	tokenExp time.Time
}

type grantRec struct {
	addonID string
	expires time.Time
	used    bool
}

type tokenRec struct {
	addonID string
	userID  string
	expires time.Time
}

// Sim is a running simulator: an http.Handler for id.heroku.com and the
// Platform API, plus methods tests use to set it up and inspect it.
type Sim struct {
	o      Options
	log    *slog.Logger
	secret []byte
	reqSeq atomic.Uint64
	reqPfx string

	mu       sync.Mutex
	addons   map[string]*addonRec // by id
	names    map[string]string    // name → id
	codes    map[string]*grantRec
	access   map[string]*tokenRec
	refresh  map[string]string // refresh token → add-on id
	buckets  map[string]*bucket
	calls    []Call
	faults   []*fault
	held     map[string]int
	release  chan struct{} // closed by ClearFaults and Close
	ctlHold  chan struct{} // closed by POST /_sim/release
	changed  chan struct{} // closed on any change while someone waits
	closed   bool
	maxCalls int
}

// New builds a simulator. It serves nothing until used as a handler, e.g.
// httptest.NewServer(sim); see NewServer.
func New(o Options) *Sim {
	if o.ClientSecret == "" {
		o.ClientSecret = DefaultClientSecret
	}
	if o.TokenTTL <= 0 {
		o.TokenTTL = DefaultTokenTTL
	}
	if o.GrantTTL <= 0 {
		o.GrantTTL = DefaultGrantTTL
	}
	if o.RateLimit <= 0 {
		o.RateLimit = DefaultRateLimit
	}
	if o.RateRefill <= 0 {
		o.RateRefill = DefaultRateRefill
	}
	if o.MaxCalls <= 0 {
		o.MaxCalls = DefaultMaxCalls
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pfx := make([]byte, 4)
	_, _ = rand.Read(pfx)
	return &Sim{
		o:        o,
		log:      log,
		secret:   []byte(o.ClientSecret),
		reqPfx:   hex.EncodeToString(pfx),
		addons:   map[string]*addonRec{},
		names:    map[string]string{},
		codes:    map[string]*grantRec{},
		access:   map[string]*tokenRec{},
		refresh:  map[string]string{},
		buckets:  map[string]*bucket{},
		held:     map[string]int{},
		release:  make(chan struct{}),
		ctlHold:  make(chan struct{}),
		maxCalls: o.MaxCalls,
	}
}

// NewServer starts a simulator behind an httptest.Server and closes both
// when the test ends, releasing held requests first so the server's Close
// does not wait on them forever.
func NewServer(tb testing.TB, o Options) (*Sim, *httptest.Server) {
	tb.Helper()
	sim := New(o)
	srv := httptest.NewServer(sim)
	tb.Cleanup(func() {
		sim.Close()
		srv.Close()
	})
	return sim, srv
}

// Close releases every held or delayed request and makes later holds and
// delays pass at once, so a server shutting down is not blocked by them.
func (s *Sim) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	close(s.release)
	close(s.ctlHold)
}

// ServeHTTP serves the token endpoint, the Platform API and the control
// surface from one origin.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case p == "/oauth/token":
		s.serveToken(w, r)
	case strings.HasPrefix(p, "/_sim/"):
		s.serveControl(w, r)
	default:
		s.serveAPI(w, r)
	}
}

func (s *Sim) now() time.Time { return s.o.Now() }

// NewAddon registers an add-on in state provisioning, as Heroku does when it
// sends the provision request, and returns the grant that request carries.
// Registering a known id again issues a fresh grant and leaves its state.
func (s *Sim) NewAddon(id string) addon.Grant {
	now := s.now()
	code := uuid.NewString()
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.addons[id]
	if a == nil {
		short := strings.ReplaceAll(id, "-", "")
		if len(short) > 8 {
			short = short[:8]
		}
		a = &addonRec{
			id:        id,
			name:      "kiln-" + short,
			appID:     uuid.NewString(),
			appName:   "app-" + short,
			planID:    uuid.NewString(),
			userID:    uuid.NewString(),
			state:     string(addon.StateProvisioning),
			config:    map[string]string{},
			createdAt: now,
			updatedAt: now,
		}
		s.addons[id] = a
		s.names[a.name] = id
	}
	if a.code != "" {
		delete(s.codes, a.code)
	}
	a.code = code
	exp := now.Add(s.o.GrantTTL)
	s.codes[code] = &grantRec{addonID: id, expires: exp}
	return addon.Grant{Code: code, ExpiresAt: exp}
}

// Addon returns the add-on as Heroku sees it.
func (s *Sim) Addon(id string) (AddonState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.addons[id]
	if a == nil {
		return AddonState{}, false
	}
	cfg := make(map[string]string, len(a.config))
	for k, v := range a.config {
		cfg[k] = v
	}
	return AddonState{ID: a.id, Name: a.name, State: a.state, Plan: a.planOf(), Config: cfg}, true
}

// Calls returns the call log in the order the calls were answered.
func (s *Sim) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// ExpireTokens makes the add-on's current access token expired, so the next
// Platform API call with it gets 401 and Kiln must refresh. It reports
// whether the add-on has a token.
func (s *Sim) ExpireTokens(addonID string) bool {
	past := s.now().Add(-time.Second)
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.addons[addonID]
	if a == nil || a.access == "" {
		return false
	}
	a.tokenExp = past
	if t := s.access[a.access]; t != nil {
		t.expires = past
	}
	return true
}

// Inject adds a fault. Faults apply in the order injected.
func (s *Sim) Inject(f Fault) {
	left := f.Times
	if left <= 0 {
		left = -1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &fault{Fault: f, left: left})
}

// ClearFaults removes every fault and releases the requests they hold.
func (s *Sim) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
	if !s.closed {
		close(s.release)
		s.release = make(chan struct{})
	}
}

// Release lets go of requests held by control-surface faults ("hold": true);
// such faults keep holding later calls until cleared.
func (s *Sim) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		close(s.ctlHold)
		s.ctlHold = make(chan struct{})
	}
}

// Holding reports how many calls of kind ("" for any) are blocked on a
// hold right now, so a test knows when to kill the caller.
func (s *Sim) Holding(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if kind != "" {
		return s.held[kind]
	}
	n := 0
	for _, c := range s.held {
		n += c
	}
	return n
}

// Wait blocks until cond reports true or ctx ends. cond is evaluated after
// every recorded call or hold change; it may call the simulator's methods.
func (s *Sim) Wait(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		if s.changed == nil {
			s.changed = make(chan struct{})
		}
		ch := s.changed
		s.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// WaitFor blocks until a call of kind for the add-on has succeeded (2xx)
// and returns the first such call: "wait until Kiln has provisioned it".
func (s *Sim) WaitFor(ctx context.Context, addonID, kind string) (Call, error) {
	var found Call
	err := s.Wait(ctx, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.calls {
			if c.Kind == kind && c.AddonID == addonID && c.Status/100 == 2 {
				found = c
				return true
			}
		}
		return false
	})
	return found, err
}

// notifyLocked wakes waiters; the caller holds mu. No channel is made while
// nobody waits, so the hot path allocates nothing for it.
func (s *Sim) notifyLocked() {
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
}

func (s *Sim) record(c Call) {
	s.mu.Lock()
	s.calls = append(s.calls, c)
	if len(s.calls) >= 2*s.maxCalls {
		n := copy(s.calls, s.calls[len(s.calls)-s.maxCalls:])
		clear(s.calls[n:])
		s.calls = s.calls[:n]
	}
	s.notifyLocked()
	s.mu.Unlock()
	s.log.Debug("heroku call", "kind", c.Kind, "addon", c.AddonID, "status", c.Status, "request_id", c.RequestID)
	if s.o.OnCall != nil {
		s.o.OnCall(c)
	}
}

// matchFault finds the fault for a call and counts it used. It also returns
// the release channels current at match time.
func (s *Sim) matchFault(kind, addonID string) (f Fault, release, ctl <-chan struct{}, closed, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, ft := range s.faults {
		if (ft.Kind != "" && ft.Kind != kind) || (ft.AddonID != "" && ft.AddonID != addonID) {
			continue
		}
		if ft.left > 0 {
			ft.left--
			if ft.left == 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
		}
		return ft.Fault, s.release, s.ctlHold, s.closed, true
	}
	return Fault{}, nil, nil, false, false
}

// applyFault delays or holds the call as the fault says, and answers it
// when the fault has a status. It reports whether the call was answered.
func (s *Sim) applyFault(w http.ResponseWriter, kind, addonID string) (status int, answered bool) {
	f, release, ctl, closed, ok := s.matchFault(kind, addonID)
	if !ok {
		return 0, false
	}
	if f.Delay > 0 && !closed {
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-release:
			t.Stop()
		}
	}
	if (f.Hold != nil || f.control) && !closed {
		s.mu.Lock()
		s.held[kind]++
		s.notifyLocked()
		s.mu.Unlock()
		hold := f.Hold
		if f.control {
			hold = ctl
		}
		select {
		case <-hold:
		case <-release:
		}
		s.mu.Lock()
		s.held[kind]--
		s.notifyLocked()
		s.mu.Unlock()
	}
	if f.Status == 0 {
		return 0, false
	}
	h := w.Header()
	if f.RetryAfter != "" {
		h.Set("Retry-After", f.RetryAfter)
	}
	if f.Status == http.StatusTooManyRequests {
		h.Set("RateLimit-Remaining", "0")
	}
	id, msg := errorFor(f.Status)
	if f.Message != "" {
		msg = f.Message
	}
	return writeError(w, f.Status, id, msg), true
}

// errorFor returns the error id and a message in Heroku's words for a
// status a fault injects.
func errorFor(status int) (id, message string) {
	switch status {
	case http.StatusBadRequest:
		return "bad_request", "Request invalid, validate usage and try again."
	case http.StatusUnauthorized:
		return "unauthorized", msgInvalidCredentials
	case http.StatusForbidden:
		return "forbidden", "You do not have access to this add-on."
	case http.StatusNotFound:
		return "not_found", msgAddonNotFound
	case http.StatusConflict:
		return "conflict", "Request failed, see response body for suggested resolution."
	case http.StatusGone:
		return "gone", "This add-on is gone."
	case http.StatusUnprocessableEntity:
		return "invalid_params", "Request failed, validate parameters and try again."
	case http.StatusTooManyRequests:
		return "rate_limit", msgRateLimit
	case http.StatusServiceUnavailable:
		return "service_unavailable", "API is temporarily unavailable. Please try again later."
	}
	if status >= 500 {
		return "internal_server_error", "Internal server error."
	}
	return "bad_request", http.StatusText(status)
}

// requestID makes a UUID-shaped id that is unique per simulator without
// reading crypto/rand on every request.
func (s *Sim) requestID() string {
	n := s.reqSeq.Add(1)
	var b [36]byte
	copy(b[:], s.reqPfx) // 8 hex
	copy(b[8:], "-0000-4000-8000-")
	const hexdig = "0123456789abcdef"
	for i := 35; i >= 24; i-- {
		b[i] = hexdig[n&0xf]
		n >>= 4
	}
	return string(b[:])
}

// sortedNames lists config var names in a stable order, for answers.
func sortedNames(m map[string]string) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
