package asheroku

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/kiln-dev/kiln/internal/herokusim"
)

// ErrUnknownAddon is returned by Sim.Addon for an add-on the simulator has
// never heard of.
var ErrUnknownAddon = errors.New("the simulator does not know that add-on")

// Sim drives a Heroku simulator (internal/herokusim) over its /_sim control
// surface, whether it runs in this process on a port or in another process
// (kiln-dev, kiln-heroku sim, docker compose): going through HTTP either
// way keeps one code path, and it is the same simulator the Kiln under test
// talks to.
type Sim struct {
	// URL is the simulator's root URL: the HEROKU_API_URL and HEROKU_ID_URL
	// the Kiln under test uses.
	URL  string
	HTTP *http.Client
}

// NewSim returns a client for the simulator at rootURL.
func NewSim(rootURL string) *Sim {
	return &Sim{URL: strings.TrimRight(rootURL, "/")}
}

// Registration is an add-on Heroku has just created on its side: its name
// and the grant the provision call carries.
type Registration struct {
	ID    string     `json:"id"`
	Name  string     `json:"name"`
	Grant OAuthGrant `json:"grant"`
}

// Register creates the add-on in the simulator (state provisioning), as
// Heroku does before it calls the provider, and returns its grant. An empty
// id lets the simulator pick a uuid.
func (s *Sim) Register(ctx context.Context, id string) (Registration, error) {
	var r Registration
	body, _ := json.Marshal(map[string]string{"id": id})
	if err := s.call(ctx, http.MethodPost, "/_sim/addons", body, http.StatusCreated, &r); err != nil {
		return Registration{}, fmt.Errorf("register add-on with the simulator: %w", err)
	}
	return r, nil
}

// Addon returns the add-on as Heroku sees it: state and config vars. It
// returns ErrUnknownAddon when the simulator has no such add-on.
func (s *Sim) Addon(ctx context.Context, id string) (herokusim.AddonState, error) {
	var st herokusim.AddonState
	err := s.call(ctx, http.MethodGet, "/_sim/addons/"+url.PathEscape(id), nil, http.StatusOK, &st)
	var se *statusError
	if errors.As(err, &se) && se.status == http.StatusNotFound {
		return st, fmt.Errorf("add-on %s: %w", id, ErrUnknownAddon)
	}
	if err != nil {
		return st, fmt.Errorf("read add-on %s from the simulator: %w", id, err)
	}
	return st, nil
}

// Calls returns every Platform API and OAuth call the simulator answered,
// oldest first.
func (s *Sim) Calls(ctx context.Context) ([]herokusim.Call, error) {
	var calls []herokusim.Call
	if err := s.call(ctx, http.MethodGet, "/_sim/calls", nil, http.StatusOK, &calls); err != nil {
		return nil, fmt.Errorf("read the simulator's calls: %w", err)
	}
	return calls, nil
}

// CallsFor returns the calls about one add-on, oldest first.
func (s *Sim) CallsFor(ctx context.Context, id string) ([]herokusim.Call, error) {
	all, err := s.Calls(ctx)
	if err != nil {
		return nil, err
	}
	var out []herokusim.Call
	for _, c := range all {
		if c.AddonID == id {
			out = append(out, c)
		}
	}
	return out, nil
}

// AddonIDs lists the add-ons the simulator has seen calls for, in order of
// first call, so `kiln-heroku status` can list them without an id.
func (s *Sim) AddonIDs(ctx context.Context) ([]string, error) {
	all, err := s.Calls(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var ids []string
	for _, c := range all {
		if c.AddonID != "" && !seen[c.AddonID] {
			seen[c.AddonID] = true
			ids = append(ids, c.AddonID)
		}
	}
	return ids, nil
}

// Ping checks that a simulator answers at URL, so commands can say "no
// simulator there" instead of failing on the first real call.
func (s *Sim) Ping(ctx context.Context) error {
	// The nil uuid is never registered: a simulator answers 404 with its
	// Platform-API-style body naming the add-on resource; another server
	// (Kiln itself, by mistake) answers something else.
	var body struct{ ID, Resource string }
	err := s.call(ctx, http.MethodGet, "/_sim/addons/00000000-0000-0000-0000-000000000000", nil, http.StatusNotFound, &body)
	var se *statusError
	if errors.As(err, &se) {
		return fmt.Errorf("no Heroku simulator answers at %s (GET /_sim/addons/... answered %d)", s.URL, se.status)
	}
	if err != nil {
		return fmt.Errorf("no Heroku simulator answers at %s: %w", s.URL, err)
	}
	if body.ID != "not_found" || body.Resource != "addon" {
		return fmt.Errorf("no Heroku simulator answers at %s (its 404 is not the simulator's)", s.URL)
	}
	return nil
}

// Progress is what the simulator has seen of one add-on while Kiln
// provisions it.
type Progress struct {
	ID      string
	State   string // as Heroku sees it: provisioning, provisioned, deprovisioned
	Elapsed time.Duration
	Calls   []herokusim.Call // the calls about this add-on so far
}

// Step reports whether a call of kind succeeded for the add-on, and the
// status of the last failed attempt of that kind (0 if none).
func (p Progress) Step(kind string) (done bool, lastFailure int) {
	for _, c := range p.Calls {
		if c.Kind != kind {
			continue
		}
		if c.Status/100 == 2 {
			done = true
		} else {
			lastFailure = c.Status
		}
	}
	return done, lastFailure
}

// WaitProvisioned polls the simulator every interval until Kiln has marked
// the add-on provisioned, calling progress (when not nil) after each poll.
// It returns the add-on's final state, or the last one seen and ctx's error.
func (s *Sim) WaitProvisioned(ctx context.Context, id string, every time.Duration, progress func(Progress)) (herokusim.AddonState, error) {
	start := time.Now()
	t := time.NewTicker(every)
	defer t.Stop()
	var last herokusim.AddonState
	for {
		st, err := s.Addon(ctx, id)
		if err != nil && ctx.Err() == nil {
			return last, err
		}
		if err == nil {
			last = st
			if progress != nil {
				calls, cerr := s.CallsFor(ctx, id)
				if cerr == nil {
					progress(Progress{ID: id, State: st.State, Elapsed: time.Since(start), Calls: calls})
				}
			}
			if st.State == "provisioned" {
				return st, nil
			}
			if st.State == "deprovisioned" {
				return st, fmt.Errorf("add-on %s was deprovisioned before it was provisioned", id)
			}
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-t.C:
		}
	}
}

// statusError is an unexpected status from the control surface.
type statusError struct {
	status int
	body   string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("unexpected status %d: %s", e.status, e.body)
}

func (s *Sim) call(ctx context.Context, method, path string, body []byte, want int, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c := s.HTTP
	if c == nil {
		c = defaultClient
	}
	a, err := do(c, req)
	if err != nil {
		return err
	}
	if a.Status != want {
		return &statusError{status: a.Status, body: strings.TrimSpace(string(a.Body))}
	}
	if out != nil {
		if err := json.Unmarshal(a.Body, out); err != nil {
			return fmt.Errorf("decode %s %s: %w", method, path, err)
		}
	}
	return nil
}

// sortedKeys lists a form's keys in a stable order.
func sortedKeys(v url.Values) []string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
