package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/kiln-dev/kiln/internal/asheroku"
	"github.com/kiln-dev/kiln/internal/herokusim"
)

// status shows one add-on, or every add-on, as Heroku (the simulator) and
// as Kiln (its operator API) each see it, side by side: a disagreement is
// what a developer is usually looking for. Either side may be unreachable
// or may not know an add-on (a simulator restarted without its saved
// state); the other side is still shown.
func (c *cli) status(args []string) error {
	fs, s := c.flags("status", "[ADDON_ID]")
	reveal := fs.Bool("reveal", false, "show config var values in full (credentials included)")
	adminPassword := fs.String("admin-password", "", "Kiln's ADMIN_PASSWORD, to read Kiln's side (default: ADMIN_PASSWORD)")
	pos, err := parse(fs, s, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usageError{"want at most one ADDON_ID"}
	}
	var sim *asheroku.Sim
	if s.simListen == "" { // a fresh in-process simulator would know nothing
		var stop func()
		var simErr error
		if sim, stop, simErr = s.sim(c.ctx); simErr != nil {
			fmt.Fprintf(c.stderr, "Heroku's side unavailable: %v\n", simErr)
			sim = nil
		} else {
			defer stop()
		}
	}
	op, opErr := s.operator(*adminPassword)
	if opErr != nil {
		fmt.Fprintf(c.stderr, "Kiln's side unavailable: %v\n", opErr)
	}
	if sim == nil && op == nil {
		return errors.New("neither the simulator nor Kiln's operator API can be read")
	}
	if len(pos) == 0 {
		return c.statusAll(sim, op)
	}
	return c.statusOne(pos[0], sim, op, *reveal)
}

// operator is the client for Kiln's operator API.
func (s *settings) operator(password string) (*asheroku.Operator, error) {
	password = first(password, s.env("ADMIN_PASSWORD"))
	if password == "" {
		return nil, errors.New("no admin password: pass --admin-password or set ADMIN_PASSWORD (make dev writes it to .dev/env)")
	}
	k, err := s.kiln()
	if err != nil {
		return nil, err
	}
	return &asheroku.Operator{URL: k.URL, Password: password}, nil
}

// statusRow is one add-on as both sides see it.
type statusRow struct {
	id               string
	simPlan, simSt   string
	kilnPlan, kilnSt string
}

func (c *cli) statusAll(sim *asheroku.Sim, op *asheroku.Operator) error {
	rows := map[string]*statusRow{}
	var order []string
	row := func(id string) *statusRow {
		r := rows[id]
		if r == nil {
			r = &statusRow{id: id, simPlan: "-", simSt: "-", kilnPlan: "-", kilnSt: "-"}
			rows[id] = r
			order = append(order, id)
		}
		return r
	}
	simNote, kilnNote := "", ""
	if sim != nil {
		list, err := sim.List(c.ctx)
		if err != nil {
			simNote = err.Error()
		}
		for _, st := range list {
			r := row(st.ID)
			r.simPlan, r.simSt = st.Plan, st.State
		}
	} else {
		simNote = "unavailable"
	}
	if op != nil {
		list, err := op.Resources(c.ctx)
		if err != nil {
			kilnNote = err.Error()
		}
		for _, v := range list {
			r := row(v.ID)
			r.kilnPlan, r.kilnSt = v.PlanName(), v.State
		}
	} else {
		kilnNote = "unavailable"
	}
	if len(order) == 0 {
		fmt.Fprintln(c.stdout, "neither Heroku (the simulator) nor Kiln knows any add-on yet; try: kiln-heroku provision")
	} else {
		fmt.Fprintf(c.stdout, "%-36s  %-24s  %s\n", "ADD-ON", "HEROKU (simulator)", "KILN")
		for _, id := range order {
			r := rows[id]
			mark := ""
			if r.simSt != "-" && r.kilnSt != "-" && (r.simSt != r.kilnSt || r.simPlan != r.kilnPlan) {
				mark = "  ≠"
			}
			fmt.Fprintf(c.stdout, "%-36s  %-24s  %s%s\n", r.id, r.simSt+" "+r.simPlan, r.kilnSt+" "+r.kilnPlan, mark)
		}
	}
	if simNote != "" {
		fmt.Fprintf(c.stderr, "Heroku's side: %s\n", simNote)
	}
	if kilnNote != "" {
		fmt.Fprintf(c.stderr, "Kiln's side: %s\n", kilnNote)
	}
	return nil
}

func (c *cli) statusOne(id string, sim *asheroku.Sim, op *asheroku.Operator, reveal bool) error {
	var st *herokusim.AddonState
	simSays := "unavailable"
	if sim != nil {
		got, err := sim.Addon(c.ctx, id)
		switch {
		case err == nil:
			st = &got
		case errors.Is(err, asheroku.ErrUnknownAddon):
			simSays = "unknown to the simulator (created before it started, without saved state?)"
		default:
			simSays = err.Error()
		}
	}
	var kv *asheroku.KilnView
	kilnSays := "unavailable"
	if op != nil {
		got, err := op.Resource(c.ctx, id)
		switch {
		case err == nil:
			kv = &got
		case errors.Is(err, asheroku.ErrNotInKiln):
			kilnSays = "unknown to Kiln"
		default:
			kilnSays = err.Error()
		}
	}
	if st == nil && kv == nil {
		fmt.Fprintf(c.stdout, "add-on  %s\nHeroku  %s\nKiln    %s\n", id, simSays, kilnSays)
		return exitError{1}
	}
	name := ""
	switch {
	case st != nil:
		name = st.Name
	case kv != nil:
		name = kv.Name
	}
	fmt.Fprintf(c.stdout, "add-on  %s (%s)\n", id, name)
	fmt.Fprintf(c.stdout, "%-8s%-30s%s\n", "", "Heroku (simulator)", "Kiln")
	hPlan, hState, kPlan, kState := simSays, simSays, kilnSays, kilnSays
	if st != nil {
		hPlan, hState = st.Plan, st.State
	}
	if kv != nil {
		kPlan, kState = kv.PlanName(), kv.State
		if kv.PendingPlan != nil {
			kPlan += " (changing to " + strings.TrimPrefix(kv.PendingPlan.Name, strings.SplitN(kv.Plan.Name, ":", 2)[0]+":") + ")"
		}
		if kv.Reason != "" {
			kState += " (" + kv.Reason + ")"
		}
	}
	fmt.Fprintf(c.stdout, "%-8s%-30s%s\n", "plan", hPlan, kPlan)
	fmt.Fprintf(c.stdout, "%-8s%-30s%s\n", "state", hState, kState)
	if st != nil {
		fmt.Fprintln(c.stdout, "config vars Heroku holds")
		printConfig(c.stdout, st.Config, reveal)
	} else if kv != nil {
		fmt.Fprintf(c.stdout, "config vars Kiln set: %s\n", strings.Join(kv.ConfigVars, ", "))
	}
	if sim != nil && st != nil {
		calls, err := sim.CallsFor(c.ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintln(c.stdout, "calls Kiln made to Heroku (since the simulator started)")
		for _, call := range calls {
			fmt.Fprintf(c.stdout, "  %s  %-11s %d\n", call.At.Local().Format("15:04:05.000"), call.Kind, call.Status)
		}
		if len(calls) == 0 {
			fmt.Fprintln(c.stdout, "  none yet")
		}
	}
	return nil
}
