package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

// TestShortAdminPasswordRefused: web does not start with an ADMIN_PASSWORD
// under 32 characters, and says why.
func TestShortAdminPasswordRefused(t *testing.T) {
	env := map[string]string{
		"PORT": "5999", "DATABASE_URL": "postgres://postgres@127.0.0.1:1/none", "REDIS_URL": "redis://127.0.0.1:1",
		"ADDON_ID": "kiln", "ADDON_PASSWORD": "pw", "ADDON_SSO_SALT": "salt", "HEROKU_OAUTH_CLIENT_SECRET": "s",
		"ENCRYPTION_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "ADMIN_PASSWORD": "admin",
	}
	err := run(context.Background(), func(k string) string { return env[k] }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "ADMIN_PASSWORD") || !strings.Contains(err.Error(), "at least 32") {
		t.Fatalf("run = %v, want a refusal naming ADMIN_PASSWORD and the 32-character minimum", err)
	}
}
