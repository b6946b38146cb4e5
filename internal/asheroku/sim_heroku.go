package asheroku

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/kiln-dev/kiln/internal/herokusim"
)

// Webhooks returns the add-on's webhook subscriptions as the simulator
// recorded them (secrets included: it is Heroku's side).
func (s *Sim) Webhooks(ctx context.Context, id string) ([]herokusim.Webhook, error) {
	var out []herokusim.Webhook
	if err := s.call(ctx, http.MethodGet, "/_sim/addons/"+url.PathEscape(id)+"/webhooks", nil, http.StatusOK, &out); err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	return out, nil
}

// Deliver has the simulator deliver a webhook event to the add-on's
// subscriptions and returns what each answered.
func (s *Sim) Deliver(ctx context.Context, id string, ev herokusim.Event) ([]herokusim.Delivery, error) {
	body, _ := json.Marshal(ev)
	var out []herokusim.Delivery
	if err := s.call(ctx, http.MethodPost, "/_sim/addons/"+url.PathEscape(id)+"/deliveries", body, http.StatusOK, &out); err != nil {
		return nil, fmt.Errorf("deliver a webhook event: %w", err)
	}
	return out, nil
}

// LogInputURL returns the add-on's log_input_url on the simulator, for the
// provision request.
func (s *Sim) LogInputURL(ctx context.Context, id string) (string, error) {
	var out struct {
		URL string `json:"log_input_url"`
	}
	if err := s.call(ctx, http.MethodGet, "/_sim/addons/"+url.PathEscape(id)+"/log-input-url", nil, http.StatusOK, &out); err != nil {
		return "", fmt.Errorf("log_input_url: %w", err)
	}
	return out.URL, nil
}

// Logs returns the frames written to the add-on's log stream.
func (s *Sim) Logs(ctx context.Context, id string) ([]herokusim.LogLine, error) {
	var out []herokusim.LogLine
	if err := s.call(ctx, http.MethodGet, "/_sim/addons/"+url.PathEscape(id)+"/logs", nil, http.StatusOK, &out); err != nil {
		return nil, fmt.Errorf("read the log stream: %w", err)
	}
	return out, nil
}
