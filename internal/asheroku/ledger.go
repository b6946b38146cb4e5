package asheroku

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/kiln-dev/kiln/internal/herokusim"
)

// RegisterOnPlan is Register for an add-on created on plan, so the
// simulator (Heroku's side) knows the plan as Heroku would.
func (s *Sim) RegisterOnPlan(ctx context.Context, id, plan string) (Registration, error) {
	var r Registration
	body, _ := json.Marshal(map[string]string{"id": id, "plan": plan})
	if err := s.call(ctx, http.MethodPost, "/_sim/addons", body, http.StatusCreated, &r); err != nil {
		return Registration{}, fmt.Errorf("register add-on with the simulator: %w", err)
	}
	return r, nil
}

// List returns every add-on the simulator holds, oldest first.
func (s *Sim) List(ctx context.Context) ([]herokusim.AddonState, error) {
	var out []herokusim.AddonState
	if err := s.call(ctx, http.MethodGet, "/_sim/addons", nil, http.StatusOK, &out); err != nil {
		return nil, fmt.Errorf("list the simulator's add-ons: %w", err)
	}
	return out, nil
}

// Record changes Heroku's own record of an add-on (its plan, its state), as
// Heroku does when it sends a plan change or a deprovision; empty
// arguments are left alone.
func (s *Sim) Record(ctx context.Context, id, plan, state string) (herokusim.AddonState, error) {
	var st herokusim.AddonState
	body, _ := json.Marshal(map[string]string{"plan": plan, "state": state})
	err := s.call(ctx, http.MethodPatch, "/_sim/addons/"+url.PathEscape(id), body, http.StatusOK, &st)
	var se *statusError
	if errors.As(err, &se) && se.status == http.StatusNotFound {
		return st, fmt.Errorf("add-on %s: %w", id, ErrUnknownAddon)
	}
	if err != nil {
		return st, fmt.Errorf("record add-on %s in the simulator: %w", id, err)
	}
	return st, nil
}

// KilnView is an add-on as Kiln records it, read through the operator API.
type KilnView struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	State  string `json:"state"`
	Reason string `json:"reason"`
	Plan   struct {
		Name string `json:"name"`
	} `json:"plan"`
	PendingPlan *struct {
		Name string `json:"name"`
	} `json:"pending_plan"`
	ConfigVars []string `json:"config_vars"`
	UpdatedAt  string   `json:"updated_at"`
}

// PlanName is the add-on's plan slug (without the add-on's prefix).
func (v KilnView) PlanName() string {
	if _, slug, ok := strings.Cut(v.Plan.Name, ":"); ok {
		return slug
	}
	return v.Plan.Name
}

// Operator reads Kiln's own records through its operator API (/admin/api),
// with the admin password.
type Operator struct {
	URL      string
	Password string
	HTTP     *http.Client
}

// ErrNotInKiln says Kiln has no record of an add-on.
var ErrNotInKiln = errors.New("kiln has no such add-on")

// operatorMedia is the operator API's versioned media type.
const operatorMedia = "application/vnd.kiln+json; version=1"

func (o *Operator) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(o.URL, "/")+"/admin/api"+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", operatorMedia)
	req.Header.Set("Authorization", "Bearer "+o.Password)
	c := o.HTTP
	if c == nil {
		c = defaultClient
	}
	a, err := do(c, req)
	if err != nil {
		return err
	}
	switch {
	case a.Status == http.StatusNotFound:
		return ErrNotInKiln
	case a.Status/100 != 2:
		return fmt.Errorf("Kiln's operator API answered %d: %s", a.Status, a.Message())
	}
	return json.Unmarshal(a.Body, out)
}

// Resource reads one add-on.
func (o *Operator) Resource(ctx context.Context, id string) (KilnView, error) {
	var v KilnView
	err := o.get(ctx, "/resources/"+url.PathEscape(id), &v)
	return v, err
}

// Resources reads the newest add-ons Kiln holds (up to 200).
func (o *Operator) Resources(ctx context.Context) ([]KilnView, error) {
	var vs []KilnView
	err := o.get(ctx, "/resources", &vs)
	return vs, err
}
