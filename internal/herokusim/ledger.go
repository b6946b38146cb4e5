package herokusim

import (
	"sort"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

// This file is the simulator's record of add-ons as a whole: listing what
// it holds, changing Heroku's own record when Heroku (a tool playing it)
// sends a plan change or a deprovision, and saving and restoring
// everything, so a local simulator (make dev's) can outlive a restart and
// the tokens Kiln holds keep working.

// DefaultPlan is the plan slug of an add-on registered without one.
const DefaultPlan = "test"

// List returns every add-on the simulator holds, oldest first.
func (s *Sim) List() []AddonState {
	s.mu.Lock()
	recs := make([]*addonRec, 0, len(s.addons))
	for _, a := range s.addons {
		recs = append(recs, a)
	}
	sort.Slice(recs, func(i, j int) bool {
		if !recs[i].createdAt.Equal(recs[j].createdAt) {
			return recs[i].createdAt.Before(recs[j].createdAt)
		}
		return recs[i].id < recs[j].id
	})
	ids := make([]string, len(recs))
	for i, a := range recs {
		ids[i] = a.id
	}
	s.mu.Unlock()
	out := make([]AddonState, 0, len(ids))
	for _, id := range ids {
		if st, ok := s.Addon(id); ok {
			out = append(out, st)
		}
	}
	return out
}

// NewAddonOnPlan is NewAddon for an add-on created on plan (a slug).
func (s *Sim) NewAddonOnPlan(id, plan string) addon.Grant {
	g := s.NewAddon(id)
	if plan != "" {
		s.Record(id, plan, "")
	}
	return g
}

// Record changes Heroku's own record of an add-on, as Heroku does when it
// sends the provider a plan change (plan) or a deprovision (state
// "deprovisioned"); empty arguments are left as they are. It reports
// whether the add-on exists.
func (s *Sim) Record(id, plan, state string) (AddonState, bool) {
	s.mu.Lock()
	a := s.addons[id]
	if a != nil {
		if plan != "" {
			a.plan = plan
		}
		if state != "" {
			a.state = state
		}
		a.updatedAt = s.now()
		s.notifyLocked()
	}
	s.mu.Unlock()
	if a == nil {
		return AddonState{}, false
	}
	return s.Addon(id)
}

// planOf is the add-on's plan slug; the caller holds mu.
func (a *addonRec) planOf() string {
	if a.plan == "" {
		return DefaultPlan
	}
	return a.plan
}

// Snapshot is everything a simulator holds about add-ons, grants and
// tokens. It holds live credentials: keep it private (local development
// only).
type Snapshot struct {
	Addons []SnapshotAddon `json:"addons"`
}

// SnapshotAddon is one add-on in a Snapshot.
type SnapshotAddon struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	AppID     string            `json:"app_id"`
	AppName   string            `json:"app_name"`
	PlanID    string            `json:"plan_id"`
	Plan      string            `json:"plan"`
	UserID    string            `json:"user_id"`
	State     string            `json:"state"`
	Config    map[string]string `json:"config"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
	Code      string            `json:"code,omitempty"`
	CodeUntil time.Time         `json:"code_until,omitempty"`
	Access    string            `json:"access,omitempty"`
	Refresh   string            `json:"refresh,omitempty"`
	TokenExp  time.Time         `json:"token_exp,omitempty"`
}

// Snapshot saves every add-on with its grant and tokens.
func (s *Sim) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	var snap Snapshot
	for _, a := range s.addons {
		cfg := make(map[string]string, len(a.config))
		for k, v := range a.config {
			cfg[k] = v
		}
		sa := SnapshotAddon{
			ID: a.id, Name: a.name, AppID: a.appID, AppName: a.appName, PlanID: a.planID, Plan: a.plan,
			UserID: a.userID, State: a.state, Config: cfg, CreatedAt: a.createdAt, UpdatedAt: a.updatedAt,
			Access: a.access, Refresh: a.refresh, TokenExp: a.tokenExp,
		}
		if g := s.codes[a.code]; a.code != "" && g != nil && !g.used {
			sa.Code, sa.CodeUntil = a.code, g.expires
		}
		snap.Addons = append(snap.Addons, sa)
	}
	sort.Slice(snap.Addons, func(i, j int) bool { return snap.Addons[i].CreatedAt.Before(snap.Addons[j].CreatedAt) })
	return snap
}

// Restore adds a Snapshot's add-ons, grants and tokens to the simulator
// (replacing add-ons it already holds under the same id).
func (s *Sim) Restore(snap Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sa := range snap.Addons {
		if sa.ID == "" {
			continue
		}
		a := &addonRec{
			id: sa.ID, name: sa.Name, appID: sa.AppID, appName: sa.AppName, planID: sa.PlanID, plan: sa.Plan,
			userID: sa.UserID, state: sa.State, config: map[string]string{}, createdAt: sa.CreatedAt, updatedAt: sa.UpdatedAt,
			code: sa.Code, access: sa.Access, refresh: sa.Refresh, tokenExp: sa.TokenExp,
		}
		for k, v := range sa.Config {
			a.config[k] = v
		}
		s.addons[a.id] = a
		if a.name != "" {
			s.names[a.name] = a.id
		}
		if a.code != "" {
			s.codes[a.code] = &grantRec{addonID: a.id, expires: sa.CodeUntil}
		}
		if a.access != "" {
			s.access[a.access] = &tokenRec{addonID: a.id, userID: a.userID, expires: a.tokenExp}
		}
		if a.refresh != "" {
			s.refresh[a.refresh] = a.id
		}
	}
	s.notifyLocked()
}
