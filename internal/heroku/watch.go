package heroku

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/kiln-dev/kiln/internal/addon"
)

var _ addon.Watcher = (*Client)(nil)

// addonInfo is the part of the Platform API's add-on resource Kiln reads.
type addonInfo struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	State string `json:"state"`
	App   struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"app"`
}

// GetAddon reads the add-on as Heroku has it (GET /addons/{id}): its app
// and its state. An add-on Heroku no longer knows is ENOTFOUND.
func (c *Client) GetAddon(ctx context.Context, accessToken string, addonID addon.ID) (addon.HerokuAddon, error) {
	body, err := c.platformAnswer(ctx, http.MethodGet, string(addonID), "", accessToken, nil)
	if err != nil {
		return addon.HerokuAddon{}, err
	}
	var a addonInfo
	if err := json.Unmarshal(body, &a); err != nil || a.ID == "" {
		e := &APIError{Op: "GET /addons/" + string(addonID), Status: http.StatusOK, Message: "unreadable add-on"}
		return addon.HerokuAddon{}, addon.Wrap(addon.EUNAVAILABLE, e, "Heroku's answer about add-on %s could not be read.", addonID)
	}
	return addon.HerokuAddon{ID: a.ID, Name: a.Name, AppID: a.App.ID, AppName: a.App.Name, State: a.State}, nil
}

// CreateWebhook subscribes the add-on to webhook events
// (POST /addons/{id}/webhooks) and returns the subscription's id. The
// secret always travels in the request, so Heroku never has to generate
// one Kiln could miss.
func (c *Client) CreateWebhook(ctx context.Context, accessToken string, addonID addon.ID, sub addon.WebhookSubscription) (string, error) {
	body, err := json.Marshal(map[string]any{
		"include":       sub.Include,
		"level":         sub.Level,
		"url":           sub.URL,
		"secret":        sub.Secret,
		"authorization": nil,
	})
	if err != nil {
		return "", addon.Wrap(addon.EINTERNAL, err, "The webhook subscription could not be encoded.")
	}
	ans, err := c.platformAnswer(ctx, http.MethodPost, string(addonID), "/webhooks", accessToken, body)
	if err != nil {
		return "", err
	}
	var hook struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(ans, &hook); err != nil || hook.ID == "" {
		return "", addon.Errorf(addon.EUNAVAILABLE, "Heroku's answer to the webhook subscription of add-on %s could not be read.", addonID)
	}
	return hook.ID, nil
}
