package heroku

import (
	"context"
	"strings"
	"testing"

	"github.com/kiln-dev/kiln/internal/herokusim"

	"github.com/kiln-dev/kiln/internal/addon"
)

func TestGetAddon(t *testing.T) {
	e := start(t, herokusim.Options{})
	ctx := context.Background()
	g := e.sim.NewAddon(idA)
	tok, err := e.client.ExchangeGrant(ctx, g.Code)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.client.GetAddon(ctx, tok.Access, idA)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := e.sim.Addon(idA)
	if got.ID != idA || got.AppID != st.AppID || got.AppName != st.AppName || got.State != "provisioning" || got.Name != st.Name {
		t.Errorf("GetAddon = %+v, want the simulator's %+v", got, st)
	}
	tests := []struct {
		name  string
		setup func()
		code  string
	}{
		{"deprovisioned is an answer, not an error", func() { e.sim.SetState(idA, "deprovisioned") }, ""},
		{"unknown add-on", func() { e.sim.Remove(idA) }, addon.ENOTFOUND},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.setup()
			_, err := e.client.GetAddon(ctx, tok.Access, idA)
			if addon.ErrorCode(err) != tt.code {
				t.Errorf("error %v, want code %q", err, tt.code)
			}
		})
	}
}

func TestGetAddonRevoked(t *testing.T) {
	e := start(t, herokusim.Options{})
	ctx := context.Background()
	tok, err := e.client.ExchangeGrant(ctx, e.sim.NewAddon(idB).Code)
	if err != nil {
		t.Fatal(err)
	}
	e.sim.RevokeTokens(idB)
	if _, err := e.client.GetAddon(ctx, tok.Access, idB); addon.ErrorCode(err) != addon.EUNAUTHORIZED {
		t.Errorf("GetAddon with a revoked token: %v, want EUNAUTHORIZED", err)
	}
}

func TestCreateWebhook(t *testing.T) {
	e := start(t, herokusim.Options{})
	ctx := context.Background()
	g := e.sim.NewAddon(idA)
	tok, err := e.client.ExchangeGrant(ctx, g.Code)
	if err != nil {
		t.Fatal(err)
	}
	sub := addon.WebhookSubscription{URL: "https://kiln.example.com/heroku/webhooks?addon_id=" + idA, Secret: "s3cret-of-kiln", Level: "notify", Include: addon.WebhookEvents}
	id, err := e.client.CreateWebhook(ctx, tok.Access, idA, sub)
	if err != nil || id == "" {
		t.Fatalf("CreateWebhook = %q, %v", id, err)
	}
	hooks := e.sim.Webhooks(idA)
	if len(hooks) != 1 || hooks[0].ID != id || hooks[0].Secret != sub.Secret || hooks[0].URL != sub.URL || hooks[0].Level != "notify" {
		t.Errorf("the simulator has %+v", hooks)
	}
	sub.Level = "loud"
	if _, err := e.client.CreateWebhook(ctx, tok.Access, idA, sub); addon.ErrorCode(err) != addon.EINVALID {
		t.Errorf("a refused subscription: %v, want EINVALID", err)
	}
	if logs := e.logs.String(); strings.Contains(logs, tok.Access) || strings.Contains(logs, "s3cret-of-kiln") {
		t.Error("the client logged a token or the webhook secret")
	}
}
