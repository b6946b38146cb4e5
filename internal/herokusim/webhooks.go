package herokusim

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/kiln-dev/kiln/internal/addon"
)

// The event types an add-on webhook may include, from the Platform API's
// add-on webhook reference.
var webhookEvents = []string{
	"api:addon-attachment", "api:addon", "api:app", "api:build", "api:collaborator",
	"api:domain", "api:dyno", "api:formation", "api:release", "api:sni-endpoint",
}

type webhookRec struct {
	id            string
	include       []string
	level         string
	url           string
	authorization string
	secret        string
	createdAt     time.Time
}

type attachmentRec struct {
	id, name, appID, appName string
}

type webhookRequest struct {
	Include       []string `json:"include"`
	Level         string   `json:"level"`
	URL           string   `json:"url"`
	Authorization *string  `json:"authorization"`
	Secret        *string  `json:"secret"`
}

// webhookView is the add-on webhook resource as the Platform API answers it.
type webhookView struct {
	Addon     ref       `json:"addon"`
	CreatedAt time.Time `json:"created_at"`
	ID        string    `json:"id"`
	Include   []string  `json:"include"`
	Level     string    `json:"level"`
	UpdatedAt time.Time `json:"updated_at"`
	URL       string    `json:"url"`
}

// readWebhook decodes and validates a subscription; it answers the request
// itself (and returns the status) when the body is refused.
func (s *Sim) readWebhook(w http.ResponseWriter, r *http.Request) (*webhookRequest, int) {
	var body webhookRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&body); err != nil {
		return nil, writeError(w, http.StatusBadRequest, "bad_request", "Invalid JSON in request body.")
	}
	if len(body.Include) == 0 || body.Level == "" || body.URL == "" {
		return nil, writeError(w, http.StatusUnprocessableEntity, "invalid_params", "Missing required params: include, level, url.")
	}
	for _, e := range body.Include {
		if !slices.Contains(webhookEvents, e) {
			return nil, writeError(w, http.StatusUnprocessableEntity, "invalid_params", "Unknown event type "+e+".")
		}
	}
	if body.Level != "notify" && body.Level != "sync" {
		return nil, writeError(w, http.StatusUnprocessableEntity, "invalid_params", "level must be notify or sync.")
	}
	u, err := url.Parse(body.URL)
	// Heroku wants https; the simulator also takes http to loopback, where
	// tests and make dev listen.
	if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && loopback(u.Hostname()))) {
		return nil, writeError(w, http.StatusUnprocessableEntity, "invalid_params", "url must be an https URL.")
	}
	return &body, 0
}

func loopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// subscribeLocked records a subscription; the caller holds mu. A second
// subscription to the same URL replaces the first (its secret too), so a
// partner that retries after a lost answer ends with one subscription
// (UNCONFIRMED: the real API's answer to a duplicate URL is not public).
// The generated secret is returned when the request carried none, as
// Heroku returns it once in the Heroku-Webhook-Secret header.
func (s *Sim) subscribeLocked(a *addonRec, req *webhookRequest, now time.Time) (webhookView, string) {
	var generated string
	secret := ""
	if req.Secret != nil && *req.Secret != "" {
		secret = *req.Secret
	} else {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		secret = hex.EncodeToString(b)
		generated = secret
	}
	rec := &webhookRec{id: uuid.NewString(), include: slices.Clone(req.Include), level: req.Level, url: req.URL, secret: secret, createdAt: now}
	if req.Authorization != nil {
		rec.authorization = *req.Authorization
	}
	for i, h := range a.webhooks {
		if h.url == req.URL {
			rec.id, rec.createdAt = h.id, h.createdAt
			a.webhooks = slices.Delete(a.webhooks, i, i+1)
			break
		}
	}
	a.webhooks = append(a.webhooks, rec)
	return webhookView{
		Addon: ref{ID: a.id, Name: a.name}, CreatedAt: rec.createdAt.UTC().Truncate(time.Second), ID: rec.id,
		Include: rec.include, Level: rec.level, UpdatedAt: now.UTC().Truncate(time.Second), URL: rec.url,
	}, generated
}

// Webhook is a subscription as tests inspect it.
type Webhook struct {
	ID      string   `json:"id"`
	Include []string `json:"include"`
	Level   string   `json:"level"`
	URL     string   `json:"url"`
	Secret  string   `json:"secret"`
}

// Webhooks returns the add-on's webhook subscriptions.
func (s *Sim) Webhooks(addonID string) []Webhook {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.addons[addonID]
	if a == nil {
		return nil
	}
	out := make([]Webhook, 0, len(a.webhooks))
	for _, h := range a.webhooks {
		out = append(out, Webhook{ID: h.id, Include: slices.Clone(h.include), Level: h.level, URL: h.url, Secret: h.secret})
	}
	return out
}

// Event is one webhook event the simulator delivers.
type Event struct {
	// Type is the event type ("api:app", "api:addon-attachment").
	Type string `json:"event"`
	// Action is "create", "update" or "destroy".
	Action string `json:"action"`
	// Data is the resource after the change; nil lets the simulator fill
	// it from its own record of the add-on (the app, or the attachment).
	Data map[string]any `json:"data"`
	// ID is the event id; "" makes a new one. Delivering the same id again
	// is how a test repeats an event.
	ID string `json:"id"`
	// BadSignature signs the body with a wrong secret.
	BadSignature bool `json:"bad_signature"`
}

// Delivery is the outcome of one delivery attempt.
type Delivery struct {
	WebhookID string `json:"webhook_id"`
	EventID   string `json:"event_id"`
	Status    int    `json:"status"` // 0 when the request failed
	Error     string `json:"error,omitempty"`
}

// Deliver sends an event to every subscription of the add-on that includes
// its type, signed as Heroku signs: Heroku-Webhook-Hmac-SHA256 is base64 of
// HMAC-SHA256(secret, raw body).
func (s *Sim) Deliver(ctx context.Context, addonID string, ev Event) ([]Delivery, error) {
	now := s.now()
	if ev.ID == "" {
		ev.ID = uuid.NewString()
	}
	s.mu.Lock()
	a := s.addons[addonID]
	if a == nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("herokusim: no add-on %s", addonID)
	}
	if ev.Data == nil {
		ev.Data = a.eventData(ev.Type)
	}
	var targets []*webhookRec
	for _, h := range a.webhooks {
		if slices.Contains(h.include, ev.Type) {
			c := *h
			targets = append(targets, &c)
		}
	}
	s.mu.Unlock()
	resource := ev.Type
	if len(resource) > 4 && resource[:4] == "api:" {
		resource = resource[4:]
	}
	var out []Delivery
	for _, h := range targets {
		body, err := json.Marshal(map[string]any{
			"id":            ev.ID,
			"action":        ev.Action,
			"actor":         map[string]string{"email": "customer@example.com", "id": uuid.NewString()},
			"created_at":    now.UTC().Format(time.RFC3339),
			"data":          ev.Data,
			"previous_data": map[string]any{},
			"resource":      resource,
			"version":       "application/vnd.heroku+json; version=3",
			"webhook_metadata": map[string]any{
				"attempt":  map[string]string{"id": uuid.NewString()},
				"delivery": map[string]string{"id": uuid.NewString()},
				"event":    map[string]string{"id": ev.ID, "include": ev.Type},
				"webhook":  map[string]string{"id": h.id},
			},
		})
		if err != nil {
			return nil, err
		}
		key := h.secret
		if ev.BadSignature {
			key = "not-" + key
		}
		d := Delivery{WebhookID: h.id, EventID: ev.ID}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "Heroku-Webhooks")
		req.Header.Set("Heroku-Webhook-Hmac-SHA256", Sign(key, body))
		req.Header.Set("Heroku-Webhook-Id", h.id)
		if h.authorization != "" {
			req.Header.Set("Authorization", h.authorization)
		}
		res, err := s.hc.Do(req)
		if err != nil {
			d.Error = err.Error()
		} else {
			d.Status = res.StatusCode
			res.Body.Close()
		}
		out = append(out, d)
	}
	return out, nil
}

// Sign is Heroku's webhook signature of a body.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// eventData is the resource an event of this type carries, from the
// simulator's record; the caller holds mu.
func (a *addonRec) eventData(typ string) map[string]any {
	app := map[string]any{"id": a.appID, "name": a.appName}
	switch typ {
	case "api:app":
		return map[string]any{"id": a.appID, "name": a.appName, "region": map[string]string{"name": "us"}}
	case "api:addon-attachment":
		at := a.attachments[len(a.attachments)-1]
		return map[string]any{
			"id":    at.id,
			"name":  at.name,
			"app":   map[string]any{"id": at.appID, "name": at.appName},
			"addon": map[string]any{"id": a.id, "name": a.name, "app": app},
		}
	}
	return map[string]any{"id": a.id, "name": a.name, "app": app, "state": a.state}
}

// RenameApp renames the app that owns the add-on, as `heroku apps:rename`
// does: GET /addons/{id} shows the new name at once. Deliver an "api:app"
// "update" event to tell the subscriptions.
func (s *Sim) RenameApp(addonID, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.addons[addonID]
	if a == nil {
		return false
	}
	for i := range a.attachments {
		if a.attachments[i].appID == a.appID {
			a.attachments[i].appName = name
		}
	}
	a.appName = name
	a.updatedAt = s.now()
	return true
}

// Attach attaches the add-on to another app under an attachment name and
// returns the attachment id; deliver an "api:addon-attachment" "create"
// event to tell the subscriptions.
func (s *Sim) Attach(addonID, appName, attachmentName string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.addons[addonID]
	if a == nil {
		return ""
	}
	at := attachmentRec{id: uuid.NewString(), name: attachmentName, appID: uuid.NewString(), appName: appName}
	a.attachments = append(a.attachments, at)
	return at.id
}

// SetState sets the add-on's state as Heroku reports it, e.g.
// "deprovisioned" for an add-on Heroku removed without telling the
// provider (a lost DELETE, the 12-hour limit, a support action).
func (s *Sim) SetState(addonID, state string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.addons[addonID]
	if a == nil {
		return false
	}
	a.state = state
	a.updatedAt = s.now()
	return true
}

// Remove forgets the add-on: the Platform API answers 404 for it from now
// on, while its tokens stay valid (so the 404 is about the add-on, not the
// credentials).
func (s *Sim) Remove(addonID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.addons[addonID]
	if a == nil {
		return false
	}
	delete(s.addons, addonID)
	delete(s.names, a.name)
	return true
}

// RevokeTokens revokes the add-on's authorization, as a customer or Heroku
// support can: its access and refresh tokens stop working (401).
func (s *Sim) RevokeTokens(addonID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.addons[addonID]
	if a == nil {
		return false
	}
	delete(s.access, a.access)
	delete(s.refresh, a.refresh)
	a.access, a.refresh = "", ""
	return true
}

// state names the simulator accepts in SetState over HTTP.
var simStates = []string{
	string(addon.StateProvisioning), string(addon.StateProvisioned),
	string(addon.StateDeprovisioning), string(addon.StateDeprovisioned),
}
