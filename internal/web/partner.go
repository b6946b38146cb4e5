package web

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sort"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/labstack/echo/v4"
)

// This file is Heroku's Partner API (v3): the calls Heroku makes to Kiln
// under /heroku, behind Basic auth.

// The messages of provision answers. They are constants so a repeated
// request gets exactly the first answer back.
const (
	provisionMessage   = "Provisioning has started. Your add-on will be ready in a few minutes."
	provisionedMessage = "Your add-on is ready."
)

// grantLifetime is how long Heroku's OAuth grant lives after the provision
// request. It stands in for expires_at when Heroku's value cannot be read.
const grantLifetime = 5 * time.Minute

// provisionBody is Heroku's provision request as sent. Options stays raw so
// its values can be checked one by one and a refusal can name the key.
type provisionBody struct {
	UUID          string          `json:"uuid"`
	Name          string          `json:"name"`
	Plan          string          `json:"plan"`
	Region        string          `json:"region"`
	CallbackURL   string          `json:"callback_url"`
	Options       json.RawMessage `json:"options"`
	OAuthGrant    *grantBody      `json:"oauth_grant"`
	LogInputURL   string          `json:"log_input_url"`
	LogDrainToken string          `json:"log_drain_token"`
}

// grantBody is the oauth_grant object. Type is always "authorization_code"
// today; it is read but not enforced, so a new grant type fails at exchange
// (visibly, in the worker) rather than refusing the customer here.
type grantBody struct {
	Code      string `json:"code"`
	ExpiresAt string `json:"expires_at"`
	Type      string `json:"type"`
}

// provisionAnswer is the provision answer: asynchronous (202, no config,
// which Kiln pushes through the Platform API once the resource exists) or
// synchronous (200 with the config vars, for an add-on Heroku sent without
// an OAuth grant).
type provisionAnswer struct {
	ID      addon.ID          `json:"id"`
	Config  map[string]string `json:"config,omitempty"`
	Message string            `json:"message"`
}

// provision handles POST /heroku/resources. Delivery is at least once, so a
// repeat for a known uuid gets the first answer again and starts nothing; a
// repeat for a deprovisioned uuid is the service's EGONE, answered 410.
//
// Two answers, chosen by the add-on as recorded, not by this request:
//   - With an OAuth grant (the normal case) the request is recorded and
//     answered 202 at once; jobs do the work and mark the add-on provisioned
//     on Heroku. Every repeat gets the same 202, whatever the add-on's state
//     meanwhile (provisioning, provisioned, failed).
//   - Without one ("oauth_grant": null) Kiln has no Platform API access for
//     the add-on, so the service creates the resource inside the request and
//     the answer is 200 with the config vars; a repeat gets the same 200. A
//     repeat arriving while the first is still creating gets the service's
//     EUNAVAILABLE (503, Retry-After) and Heroku retries.
func (s *server) provision(c echo.Context) error {
	var body provisionBody
	if err := s.decodeJSON(c, &body); err != nil {
		return err
	}
	options, err := stringOptions(body.Options)
	if err != nil {
		return err
	}
	var id addon.ID // empty when Heroku sent none: the service says it is required
	if body.UUID != "" {
		if id, err = addon.ParseID(body.UUID); err != nil {
			return err
		}
	}
	grant, err := s.grantOf(c, id, body.OAuthGrant)
	if err != nil {
		return err
	}
	a, _, err := s.svc.Provision(c.Request().Context(), addon.ProvisionRequest{
		ID:            id,
		Name:          body.Name,
		Plan:          body.Plan,
		Region:        body.Region,
		CallbackURL:   body.CallbackURL,
		Options:       options,
		Grant:         grant,
		LogInputURL:   body.LogInputURL,
		LogDrainToken: body.LogDrainToken,
	})
	if err != nil {
		return err
	}
	if a.Synchronous() {
		if a.State != addon.StateProvisioned {
			// The service answers every other synchronous state with an
			// error; refuse to hand Heroku a 200 without config.
			return addon.Errorf(addon.EINTERNAL, "Add-on %s is %s after a synchronous provision.", a.ID, a.State)
		}
		// The config holds the customer's credentials: no cache may keep it.
		c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
		return c.JSON(http.StatusOK, provisionAnswer{ID: a.ID, Config: s.svc.Config(a), Message: provisionedMessage})
	}
	return c.JSON(http.StatusAccepted, provisionAnswer{ID: a.ID, Message: provisionMessage})
}

// stringOptions checks that options (from `heroku addons:create ... --key
// value`) is an object whose values are all strings, naming the first
// offending key so the customer can fix the command. Absent or null options
// are no options.
func stringOptions(raw json.RawMessage) (map[string]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	var values map[string]json.RawMessage
	if raw[0] != '{' || json.Unmarshal(raw, &values) != nil {
		return nil, addon.Errorf(addon.EINVALID, "The options field must be a JSON object whose values are strings.")
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make(map[string]string, len(values))
	for _, k := range keys {
		v := bytes.TrimSpace(values[k])
		var str string
		if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &str) != nil {
			return nil, addon.Errorf(addon.EINVALID, "The option %q must be a string, not %s.", addon.Clip(k, addon.MaxEchoLen), rawKind(v))
		}
		out[k] = str
	}
	return out, nil
}

// rawKind names the JSON type of a raw value, for error messages.
func rawKind(v []byte) string {
	if len(v) == 0 {
		return "empty"
	}
	switch v[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case '"':
		return "a string"
	default:
		return "a number"
	}
}

// grantLayouts are the expires_at formats accepted: Heroku's documented
// "2016-03-03T18:01:31-0800" (Z0700 also takes "Z"), RFC 3339, and Ruby's
// Time#to_s. Fractional seconds are accepted by all of them.
var grantLayouts = []string{
	"2006-01-02T15:04:05Z0700",
	time.RFC3339,
	"2006-01-02 15:04:05 -0700",
}

// grantOf turns oauth_grant into the domain's Grant; null is no grant. An
// expires_at in no known format is not a reason to refuse a paying customer:
// the grant is assumed to live Heroku's documented five minutes from now,
// which keeps the worker exchanging it urgently, and the oddity is logged.
func (s *server) grantOf(c echo.Context, addonID addon.ID, g *grantBody) (*addon.Grant, error) {
	if g == nil {
		return nil, nil
	}
	if g.Code == "" {
		return nil, addon.Errorf(addon.EINVALID, "The oauth_grant.code field is required when oauth_grant is sent.")
	}
	at, ok := parseGrantTime(g.ExpiresAt)
	if !ok {
		at = time.Now().Add(grantLifetime)
		s.log.Warn("unreadable oauth_grant.expires_at; assuming five minutes",
			"request_id", requestIDOf(c), "addon", addonID, "expires_at", g.ExpiresAt)
	}
	return &addon.Grant{Code: g.Code, ExpiresAt: at.UTC()}, nil
}

func parseGrantTime(v string) (time.Time, bool) {
	for _, layout := range grantLayouts {
		if t, err := time.Parse(layout, v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// planChangeBody is Heroku's plan change request.
type planChangeBody struct {
	Plan string `json:"plan"`
}

// planChangeAnswer is the plan change answer; config only when the plan
// changed the config vars (Heroku sets them on the app).
type planChangeAnswer struct {
	Config  map[string]string `json:"config,omitempty"`
	Message string            `json:"message"`
}

// changePlan handles PUT /heroku/resources/:uuid. The same plan is a 200
// no-op; an unknown plan or a change the driver refuses is a 422 Heroku
// shows; a change that continues in the background is a 202 and the new
// config follows through the Platform API.
func (s *server) changePlan(c echo.Context) error {
	var body planChangeBody
	if err := s.decodeJSON(c, &body); err != nil {
		return err
	}
	if body.Plan == "" {
		return addon.Errorf(addon.EINVALID, "The plan field is required.")
	}
	id, err := addon.ParseExistingID(c.Param("uuid"))
	if err != nil {
		return err
	}
	pc, err := s.svc.ChangePlan(c.Request().Context(), id, body.Plan)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if pc.Async {
		status = http.StatusAccepted
	}
	if pc.Config != nil {
		c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	}
	return c.JSON(status, planChangeAnswer{Config: pc.Config, Message: pc.Message})
}

// deprovision handles DELETE /heroku/resources/:uuid: 204 and a job destroys
// the resource; a repeat after it finished is 410; an unknown uuid 404.
func (s *server) deprovision(c echo.Context) error {
	id, err := addon.ParseExistingID(c.Param("uuid"))
	if err != nil {
		return err
	}
	if err := s.svc.Deprovision(c.Request().Context(), id); err != nil {
		return err
	}
	if s.keeper != nil && s.keeper.TellsHeroku(c.Request().Context(), id) {
		// Asynchronous deprovisioning: Kiln calls actions/deprovision once
		// the resource is gone; a repeat meanwhile is 202 again.
		return c.JSON(http.StatusAccepted, map[string]string{"id": string(id), "message": "Deprovisioning; Heroku is told when the resource is gone."})
	}
	return c.NoContent(http.StatusNoContent)
}
