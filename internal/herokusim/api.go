package herokusim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
)

// Heroku's own words, where a public source records them.
const (
	// The Platform API's answer to a request without the versioned media
	// type: 400 with the text under "error", not "message" (seen in
	// Growstuff/growstuff#1389, marc0der/gradle-heroku#4, markbates/goth#340).
	msgMissingVersion = "Please specify a version along with Heroku's API MIME type. For example, `Accept: application/vnd.heroku+json; version=3`.\n"
	// A version the API does not serve: 406 not_acceptable, per the error
	// table of the Platform API reference.
	msgNotAcceptable = "Request failed, set `Accept: application/vnd.heroku+json; version=3` header and try again."
	// No Authorization header (seen in a Platform API tutorial transcript).
	msgNoCredentials = "There were no credentials in your `Authorization` header. Try `Authorization: Bearer <OAuth access token>` or `Authorization: Basic <base64-encoded email + \":\" + password>`."
	// An expired or unknown bearer token (heroku/sudo-sandwich#25).
	msgInvalidCredentials = "Invalid credentials provided."
	// Unknown routes (heroku/legacy-cli#972).
	msgEndpointNotFound = "The requested API endpoint was not found. Are you using the right HTTP verb (i.e. `GET` vs. `POST`), and did you specify your intended version with the `Accept` header?"
	msgAddonNotFound    = "Couldn't find that add-on."
	msgRateLimit        = "Your account reached the API rate limit\nPlease wait a few minutes before making new requests"
)

// Config var names Heroku accepts from partners.
var varName = regexp.MustCompile(`^[A-Z][0-9A-Z_]+$`)

type apiError struct {
	ID       string `json:"id"`
	Message  string `json:"message"`
	Resource string `json:"resource,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
	return status
}

func writeError(w http.ResponseWriter, status int, id, message string) int {
	e := apiError{ID: id, Message: message}
	if id == "not_found" && message == msgAddonNotFound {
		e.Resource = "addon"
	}
	return writeJSON(w, status, e)
}

// route maps a Platform API request to its call kind and the add-on id or
// name it names.
func route(method, path string) (kind, key string, ok bool) {
	rest, ok := strings.CutPrefix(path, "/addons/")
	if !ok {
		return "", "", false
	}
	key, tail, _ := strings.Cut(rest, "/")
	if key == "" {
		return "", "", false
	}
	switch {
	case tail == "" && method == http.MethodGet:
		return KindGet, key, true
	case tail == "config" && method == http.MethodPatch:
		return KindConfig, key, true
	case tail == "actions/provision" && method == http.MethodPost:
		return KindProvision, key, true
	case tail == "actions/deprovision" && method == http.MethodPost:
		return KindDeprovision, key, true
	}
	return "", "", false
}

const (
	acceptOK = iota
	acceptNoVersion
	acceptBadVersion
)

// checkAccept reads the Accept header the way the Platform API does: the
// Heroku media type with version 3 (or a 3.x variant such as 3.sdk).
func checkAccept(v string) int {
	for part := range strings.SplitSeq(v, ",") {
		mt, params, _ := strings.Cut(part, ";")
		if !strings.EqualFold(strings.TrimSpace(mt), "application/vnd.heroku+json") {
			continue
		}
		for p := range strings.SplitSeq(params, ";") {
			k, val, _ := strings.Cut(p, "=")
			if strings.TrimSpace(k) != "version" {
				continue
			}
			val = strings.Trim(strings.TrimSpace(val), `"`)
			if val == "3" || strings.HasPrefix(val, "3.") {
				return acceptOK
			}
			return acceptBadVersion
		}
	}
	return acceptNoVersion
}

func (s *Sim) serveAPI(w http.ResponseWriter, r *http.Request) {
	at := s.now()
	rid := s.requestID()
	h := w.Header()
	h.Set("Request-Id", rid)
	h.Set("RateLimit-Remaining", strconv.Itoa(s.o.RateLimit))
	kind, key, ok := route(r.Method, r.URL.Path)
	if !ok {
		if checkAccept(r.Header.Get("Accept")) == acceptNoVersion {
			writeJSON(w, http.StatusBadRequest, map[string]string{"id": "missing_version", "error": msgMissingVersion})
			return
		}
		writeError(w, http.StatusNotFound, "not_found", msgEndpointNotFound)
		return
	}
	addonID := key
	s.mu.Lock()
	if _, known := s.addons[key]; !known {
		if id, byName := s.names[key]; byName {
			addonID = id
		}
	}
	s.mu.Unlock()
	st, done := s.applyFault(w, kind, addonID)
	if !done {
		st = s.api(w, r, kind, addonID)
	}
	s.record(Call{Kind: kind, AddonID: addonID, At: at, Status: st, RequestID: rid})
}

// api checks a Platform API request in the order Heroku does (version,
// credentials, rate limit, resource, access) and then performs it.
func (s *Sim) api(w http.ResponseWriter, r *http.Request, kind, addonID string) int {
	switch checkAccept(r.Header.Get("Accept")) {
	case acceptNoVersion:
		return writeJSON(w, http.StatusBadRequest, map[string]string{"id": "missing_version", "error": msgMissingVersion})
	case acceptBadVersion:
		return writeError(w, http.StatusNotAcceptable, "not_acceptable", msgNotAcceptable)
	}
	auth := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || token == "" {
		if auth == "" {
			return writeError(w, http.StatusUnauthorized, "unauthorized", msgNoCredentials)
		}
		return writeError(w, http.StatusUnauthorized, "unauthorized", msgInvalidCredentials)
	}
	now := s.now()
	s.mu.Lock()
	t := s.access[token]
	var owner, user string
	valid := t != nil && now.Before(t.expires)
	if valid {
		owner, user = t.addonID, t.userID
	}
	s.mu.Unlock()
	if !valid {
		return writeError(w, http.StatusUnauthorized, "unauthorized", msgInvalidCredentials)
	}
	remaining, wait, ok := s.take(user, now)
	w.Header().Set("RateLimit-Remaining", strconv.Itoa(remaining))
	if !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)))
		return writeError(w, http.StatusTooManyRequests, "rate_limit", msgRateLimit)
	}

	var patch []configVar
	if kind == KindConfig {
		var st int
		if patch, st = s.readConfig(w, r); st != 0 {
			return st
		}
	}

	s.mu.Lock()
	a := s.addons[addonID]
	switch {
	case a == nil:
		s.mu.Unlock()
		return writeError(w, http.StatusNotFound, "not_found", msgAddonNotFound)
	case a.id != owner:
		s.mu.Unlock()
		return writeError(w, http.StatusForbidden, "forbidden", "This OAuth token does not have access to add-on "+addonID+".")
	}
	gone := a.state == string(addon.StateDeprovisioned)
	switch kind {
	case KindConfig:
		if gone {
			s.mu.Unlock()
			// UNCONFIRMED: changing a deprovisioned add-on is refused.
			return writeError(w, http.StatusUnprocessableEntity, "invalid_params", "Add-on "+a.name+" is deprovisioned.")
		}
		for _, v := range patch {
			if v.Value == nil {
				delete(a.config, v.Name)
			} else {
				a.config[v.Name] = *v.Value
			}
		}
		a.updatedAt = now
		out := make([]configVar, 0, len(a.config))
		for _, n := range sortedNames(a.config) {
			val := a.config[n]
			out = append(out, configVar{Name: n, Value: &val})
		}
		s.mu.Unlock()
		return writeJSON(w, http.StatusOK, out)
	case KindProvision:
		if gone {
			s.mu.Unlock()
			// UNCONFIRMED: a deprovisioned add-on cannot come back.
			return writeError(w, http.StatusUnprocessableEntity, "invalid_params", "Add-on "+a.name+" is deprovisioned.")
		}
		if a.state != string(addon.StateProvisioned) { // repeating it is a no-op 200
			a.state = string(addon.StateProvisioned)
			a.updatedAt = now
		}
	case KindDeprovision:
		if !gone {
			a.state = string(addon.StateDeprovisioned)
			a.updatedAt = now
		}
	}
	view := a.view()
	s.mu.Unlock()
	return writeJSON(w, http.StatusOK, view)
}

type configVar struct {
	Name  string  `json:"name"`
	Value *string `json:"value"`
}

// readConfig decodes and validates a config update. It answers the request
// itself (and returns the status) when the body is refused.
func (s *Sim) readConfig(w http.ResponseWriter, r *http.Request) ([]configVar, int) {
	var body struct {
		Config []struct {
			Name  string          `json:"name"`
			Value json.RawMessage `json:"value"`
		} `json:"config"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	if err := dec.Decode(&body); err != nil {
		return nil, writeError(w, http.StatusBadRequest, "bad_request", "Invalid JSON in request body.")
	}
	if body.Config == nil {
		return nil, writeError(w, http.StatusUnprocessableEntity, "invalid_params", "Missing required params: config.")
	}
	out := make([]configVar, 0, len(body.Config))
	for _, c := range body.Config {
		if !varName.MatchString(c.Name) {
			return nil, writeError(w, http.StatusUnprocessableEntity, "invalid_params", "Invalid config var name "+strconv.Quote(c.Name)+".")
		}
		v := configVar{Name: c.Name}
		raw := bytes.TrimSpace(c.Value)
		if len(raw) != 0 && !bytes.Equal(raw, []byte("null")) {
			var str string
			if err := json.Unmarshal(raw, &str); err != nil {
				return nil, writeError(w, http.StatusUnprocessableEntity, "invalid_params", "Config var "+c.Name+" must be a string or null.")
			}
			v.Value = &str
		}
		out = append(out, v)
	}
	return out, 0
}

type ref struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// addonView is the Platform API's add-on resource, with the fields a
// partner sees.
type addonView struct {
	Actions      []any     `json:"actions"`
	AddonService ref       `json:"addon_service"`
	App          ref       `json:"app"`
	ConfigVars   []string  `json:"config_vars"`
	CreatedAt    time.Time `json:"created_at"`
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	Plan         ref       `json:"plan"`
	ProviderID   string    `json:"provider_id"`
	State        string    `json:"state"`
	UpdatedAt    time.Time `json:"updated_at"`
	WebURL       *string   `json:"web_url"`
}

// view snapshots the add-on for an answer; the caller holds mu.
func (a *addonRec) view() addonView {
	return addonView{
		Actions:      []any{},
		AddonService: ref{ID: "00000000-0000-4000-8000-00000000a11d", Name: "kiln"},
		App:          ref{ID: a.appID, Name: a.appName},
		ConfigVars:   sortedNames(a.config),
		CreatedAt:    a.createdAt.UTC().Truncate(time.Second),
		ID:           a.id,
		Name:         a.name,
		Plan:         ref{ID: a.planID, Name: "kiln:" + a.planOf()},
		ProviderID:   a.id,
		State:        a.state,
		UpdatedAt:    a.updatedAt.UTC().Truncate(time.Second),
	}
}
