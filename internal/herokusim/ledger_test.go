package herokusim_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/kiln-dev/kiln/internal/herokusim"
)

const idC = "0c0c0c0c-0000-4000-8000-00000000000c"

// TestControlListAndRecord: the control surface lists every add-on held
// (with its plan) and changes Heroku's own record of one, as Heroku does
// when it sends a plan change or a deprovision; the Platform API shows it.
func TestControlListAndRecord(t *testing.T) {
	e := start(t, herokusim.Options{})
	if a := e.control(t, "GET", "/addons", ""); a.status != 200 || len(a.list) != 0 {
		t.Fatalf("empty list: %d %v", a.status, a.list)
	}
	if a := e.control(t, "POST", "/addons", `{"id":"`+idA+`","plan":"basic"}`); a.status != 201 {
		t.Fatalf("register: %d", a.status)
	}
	e.clock.Add(time.Second)
	e.sim.NewAddon(idB)
	a := e.control(t, "GET", "/addons", "")
	if a.status != 200 || len(a.list) != 2 {
		t.Fatalf("list: %d %v", a.status, a.list)
	}
	first, _ := a.list[0].(map[string]any)
	second, _ := a.list[1].(map[string]any)
	if first["id"] != idA || first["plan"] != "basic" || second["id"] != idB || second["plan"] != herokusim.DefaultPlan {
		t.Errorf("list %v", a.list)
	}
	if r := e.control(t, "PATCH", "/addons/"+idA, `{"plan":"test","state":"deprovisioned"}`); r.status != 200 || r.str("plan") != "test" || r.str("state") != "deprovisioned" {
		t.Errorf("record: %d %v", r.status, r.body)
	}
	if r := e.control(t, "PATCH", "/addons/"+idA, `{"state":"exploded"}`); r.status != 422 {
		t.Errorf("an unknown state: %d", r.status)
	}
	if r := e.control(t, "PATCH", "/addons/"+idC, `{"plan":"test"}`); r.status != 404 {
		t.Errorf("an unknown add-on: %d", r.status)
	}
	access, _ := e.tokens(t, idB)
	e.sim.Record(idB, "premium", "")
	if r := e.api(t, call{method: http.MethodGet, path: "/addons/" + idB, token: access}); r.status != 200 {
		t.Fatalf("GET /addons: %d", r.status)
	} else if plan, _ := r.body["plan"].(map[string]any); plan["name"] != "kiln:premium" {
		t.Errorf("plan on the Platform API: %v", r.body["plan"])
	}
}

// TestSnapshotRestore: a new simulator restored from a snapshot knows every
// add-on, and the tokens and grants the old one issued keep working.
func TestSnapshotRestore(t *testing.T) {
	old := start(t, herokusim.Options{})
	access, refresh := old.tokens(t, idA)
	g := old.sim.NewAddonOnPlan(idB, "basic")
	old.sim.Record(idA, "", "provisioned")

	raw, err := json.Marshal(old.sim.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	var snap herokusim.Snapshot
	if err := json.Unmarshal(raw, &snap); err != nil {
		t.Fatal(err)
	}
	fresh := start(t, herokusim.Options{})
	fresh.sim.Restore(snap)
	list := fresh.sim.List()
	if len(list) != 2 || list[0].ID != idA || list[0].State != "provisioned" || list[1].Plan != "basic" {
		t.Fatalf("restored list %+v", list)
	}
	if r := fresh.api(t, call{method: http.MethodGet, path: "/addons/" + idA, token: access}); r.status != 200 {
		t.Errorf("the old access token: %d %v", r.status, r.body)
	}
	if r := fresh.token(t, refreshForm(refresh)); r.status != 200 {
		t.Errorf("the old refresh token: %d %v", r.status, r.body)
	}
	if r := fresh.token(t, grantForm(g.Code)); r.status != 200 {
		t.Errorf("the old unexchanged grant: %d %v", r.status, r.body)
	}
}
