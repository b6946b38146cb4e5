package web_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/web"
)

// TestWebhookReceiver: the receiver needs no Basic auth but a valid
// signature; it is 404 when webhooks are off; an unknown add-on is refused
// like a bad signature (nothing tells a caller which add-ons exist).
func TestWebhookReceiver(t *testing.T) {
	t.Parallel()
	c := newCustomer(t, customerConfig{})
	a := c.provisioned(t)
	ctx := context.Background()
	const secret = "a-webhook-secret-of-kiln-0123456789"
	if _, err := c.store.UpdateLink(ctx, a.ID, func(l *addon.Link) error { l.WebhookSecret, l.WebhookID = secret, "hook"; return nil }); err != nil {
		t.Fatal(err)
	}
	sign := func(key string, body []byte) string {
		m := hmac.New(sha256.New, []byte(key))
		m.Write(body)
		return base64.StdEncoding.EncodeToString(m.Sum(nil))
	}
	body := []byte(`{"id":"ev-1","action":"update","resource":"app","data":{"id":"app-1","name":"acme-prod"},"webhook_metadata":{"event":{"include":"api:app"}}}`)
	post := func(h http.Handler, id, sig string) int {
		req := httptest.NewRequest(http.MethodPost, "/heroku/webhooks?addon_id="+id, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if sig != "" {
			req.Header.Set(addon.WebhookSignatureHeader, sig)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	on := web.New(web.Options{Service: c.svc, Keeper: &addon.Keeper{Service: c.svc, Links: c.store, WebhookURL: "https://kiln.example.com/heroku/webhooks"}})
	off := web.New(web.Options{Service: c.svc, Keeper: &addon.Keeper{Service: c.svc, Links: c.store}})
	tests := []struct {
		name string
		h    http.Handler
		id   string
		sig  string
		want int
	}{
		{"off", off, string(a.ID), sign(secret, body), http.StatusNotFound},
		{"no signature", on, string(a.ID), "", http.StatusUnauthorized},
		{"wrong secret", on, string(a.ID), sign("not-"+secret, body), http.StatusUnauthorized},
		{"not base64", on, string(a.ID), "%%%", http.StatusUnauthorized},
		{"unknown add-on", on, "01234567-89ab-cdef-0123-456789abcdef", sign(secret, body), http.StatusUnauthorized},
		{"not an id", on, "x", sign(secret, body), http.StatusUnauthorized},
		{"signed", on, string(a.ID), sign(secret, body), http.StatusOK},
		{"repeated", on, string(a.ID), sign(secret, body), http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := post(tt.h, tt.id, tt.sig); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
	if l, _ := c.store.Link(ctx, a.ID); l.AppName != "acme-prod" {
		t.Errorf("app name after the signed event: %q", l.AppName)
	}
}
