package mock

import (
	"context"

	"github.com/kiln-dev/kiln/internal/addon"
)

var (
	_ addon.Watcher   = (*Watcher)(nil)
	_ addon.LogWriter = (*LogWriter)(nil)
)

// Watcher is the part of the Platform API the keeper uses (GET
// /addons/{id}, webhook subscriptions), answering through its function
// fields: a test makes Heroku report an add-on gone, refuse a token or
// subscribe it.
type Watcher struct {
	GetAddonFn      func(ctx context.Context, accessToken string, id addon.ID) (addon.HerokuAddon, error)
	CreateWebhookFn func(ctx context.Context, accessToken string, id addon.ID, sub addon.WebhookSubscription) (string, error)
}

// GetAddon calls GetAddonFn.
func (w *Watcher) GetAddon(ctx context.Context, accessToken string, id addon.ID) (addon.HerokuAddon, error) {
	if w.GetAddonFn == nil {
		panic(unset("GetAddon"))
	}
	return w.GetAddonFn(ctx, accessToken, id)
}

// CreateWebhook calls CreateWebhookFn.
func (w *Watcher) CreateWebhook(ctx context.Context, accessToken string, id addon.ID, sub addon.WebhookSubscription) (string, error) {
	if w.CreateWebhookFn == nil {
		panic(unset("CreateWebhook"))
	}
	return w.CreateWebhookFn(ctx, accessToken, id, sub)
}

// LogWriter is the app's log stream (log_input_url), answering through
// WriteLogFn: a test sees the lines the customer would read, or makes the
// stream refuse them.
type LogWriter struct {
	WriteLogFn func(ctx context.Context, url string, lines []addon.LogLine) error
}

// WriteLog calls WriteLogFn.
func (w *LogWriter) WriteLog(ctx context.Context, url string, lines []addon.LogLine) error {
	if w.WriteLogFn == nil {
		panic(unset("WriteLog"))
	}
	return w.WriteLogFn(ctx, url, lines)
}
