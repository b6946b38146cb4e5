package config

import (
	"strings"
	"testing"
	"time"
)

func TestHerokuSettings(t *testing.T) {
	c, err := Load(env(full()), Worker)
	if err != nil {
		t.Fatal(err)
	}
	if c.CredentialGrace != time.Hour || c.SyncInterval != time.Hour || !c.Webhooks || c.AsyncDeprovision {
		t.Errorf("defaults: grace %s, sync %s, webhooks %v, async %v; want 1h, 1h, true, false", c.CredentialGrace, c.SyncInterval, c.Webhooks, c.AsyncDeprovision)
	}
	m := full()
	m["CREDENTIAL_GRACE"], m["HEROKU_SYNC_INTERVAL"], m["HEROKU_WEBHOOKS"], m["ASYNC_DEPROVISION"] = "90m", "15m", "false", "true"
	if c, err = Load(env(m), Web); err != nil {
		t.Fatal(err)
	}
	if c.CredentialGrace != 90*time.Minute || c.SyncInterval != 15*time.Minute || c.Webhooks || !c.AsyncDeprovision {
		t.Errorf("set: %+v", c)
	}
	m["CREDENTIAL_GRACE"], m["HEROKU_SYNC_INTERVAL"], m["HEROKU_WEBHOOKS"], m["ASYNC_DEPROVISION"] = "an hour", "-1s", "nope", "maybe"
	_, err = Load(env(m), Web)
	for _, name := range []string{"CREDENTIAL_GRACE", "HEROKU_SYNC_INTERVAL", "HEROKU_WEBHOOKS", "ASYNC_DEPROVISION"} {
		if err == nil || !strings.Contains(err.Error(), name+" is malformed") {
			t.Errorf("error %v does not name %s", err, name)
		}
	}
}
