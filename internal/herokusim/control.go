package herokusim

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kiln-dev/kiln/internal/addon"
)

// grantTimeFormat is how Heroku writes oauth_grant.expires_at in provision
// requests.
const grantTimeFormat = "2006-01-02T15:04:05-0700"

type controlFault struct {
	Fault
	Delay string `json:"delay"` // a Go duration
	Hold  bool   `json:"hold"`  // held until POST /_sim/release
}

// serveControl is the /_sim/ surface documented in the package doc, for
// driving a simulator in another process.
func (s *Sim) serveControl(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/_sim")
	switch {
	case path == "/addons" && r.Method == http.MethodPost:
		var body struct {
			ID   string `json:"id"`
			Plan string `json:"plan"`
		}
		if r.ContentLength != 0 {
			if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&body); err != nil {
				writeError(w, http.StatusBadRequest, "bad_request", "Invalid JSON in request body.")
				return
			}
		}
		if body.ID == "" {
			body.ID = uuid.NewString()
		}
		g := s.NewAddonOnPlan(body.ID, body.Plan)
		st, _ := s.Addon(body.ID)
		writeJSON(w, http.StatusCreated, map[string]any{
			"id":   st.ID,
			"name": st.Name,
			"grant": map[string]string{
				"code":       g.Code,
				"expires_at": g.ExpiresAt.Format(grantTimeFormat),
				"type":       "authorization_code",
			},
		})
	case path == "/addons" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.List())
	case strings.HasPrefix(path, "/addons/"):
		id, action, _ := strings.Cut(strings.TrimPrefix(path, "/addons/"), "/")
		switch {
		case action == "" && r.Method == http.MethodGet:
			st, ok := s.Addon(id)
			if !ok {
				writeError(w, http.StatusNotFound, "not_found", msgAddonNotFound)
				return
			}
			writeJSON(w, http.StatusOK, st)
		case action == "" && r.Method == http.MethodPatch:
			var body struct {
				Plan  string `json:"plan"`
				State string `json:"state"`
			}
			if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&body); err != nil {
				writeError(w, http.StatusBadRequest, "bad_request", "Invalid JSON in request body.")
				return
			}
			switch body.State {
			case "", string(addon.StateProvisioning), string(addon.StateProvisioned), string(addon.StateDeprovisioned):
			default:
				writeError(w, http.StatusUnprocessableEntity, "invalid_params", "state must be provisioning, provisioned or deprovisioned.")
				return
			}
			st, ok := s.Record(id, body.Plan, body.State)
			if !ok {
				writeError(w, http.StatusNotFound, "not_found", msgAddonNotFound)
				return
			}
			writeJSON(w, http.StatusOK, st)
		case action == "expire-tokens" && r.Method == http.MethodPost:
			if !s.ExpireTokens(id) {
				writeError(w, http.StatusNotFound, "not_found", "No add-on with tokens has that id.")
				return
			}
			w.WriteHeader(http.StatusNoContent)
		default:
			writeError(w, http.StatusNotFound, "not_found", msgEndpointNotFound)
		}
	case path == "/calls" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.Calls())
	case path == "/faults" && r.Method == http.MethodPost:
		var cf controlFault
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&cf); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "Invalid JSON in request body.")
			return
		}
		f := cf.Fault
		if cf.Delay != "" {
			d, err := time.ParseDuration(cf.Delay)
			if err != nil || d < 0 {
				writeError(w, http.StatusUnprocessableEntity, "invalid_params", "delay must be a Go duration such as 2s.")
				return
			}
			f.Delay = d
		}
		if f.Status != 0 && (f.Status < 400 || f.Status > 599) {
			writeError(w, http.StatusUnprocessableEntity, "invalid_params", "status must be a 4xx or 5xx code.")
			return
		}
		f.control = cf.Hold
		s.Inject(f)
		w.WriteHeader(http.StatusNoContent)
	case path == "/faults" && r.Method == http.MethodDelete:
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	case path == "/release" && r.Method == http.MethodPost:
		s.Release()
		w.WriteHeader(http.StatusNoContent)
	default:
		writeError(w, http.StatusNotFound, "not_found", msgEndpointNotFound)
	}
}
