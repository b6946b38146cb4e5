package kiln

import (
	"context"
	"strings"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/config"
	"github.com/kiln-dev/kiln/internal/heroku"
	"github.com/kiln-dev/kiln/internal/logplex"
	"github.com/kiln-dev/kiln/internal/postgres"
)

// WebhookPath is where Heroku delivers add-on webhooks.
const WebhookPath = "/heroku/webhooks"

// Keeper builds the keeper, without its Service yet: the service is built
// over the store the keeper observes (addon.Keeper.Observe), so Open sets
// the keeper's Service once it exists.
func Keeper(cfg *config.Config, db *postgres.DB, platform *heroku.Client) *addon.Keeper {
	k := &addon.Keeper{
		Links:            db,
		Logs:             logplex.New(cfg.AddonID, platformClient()),
		Watcher:          platform,
		SyncInterval:     cfg.SyncInterval,
		AsyncDeprovision: cfg.AsyncDeprovision,
		Grace:            cfg.CredentialGrace,
	}
	if cfg.Webhooks && cfg.PublicURL != "" {
		k.WebhookURL = strings.TrimRight(cfg.PublicURL, "/") + WebhookPath
	}
	return k
}

// KeeperJobs are the worker's handlers for the keeper's jobs, and its
// deprovision job (which tells Heroku when ASYNC_DEPROVISION is on).
func KeeperJobs(k *addon.Keeper) map[addon.JobKind]func(ctx context.Context, id addon.ID) error {
	return map[addon.JobKind]func(ctx context.Context, id addon.ID) error{
		addon.JobSync:        k.Sync,
		addon.JobSubscribe:   k.Subscribe,
		addon.JobLog:         k.WriteLog,
		addon.JobRetire:      k.Retire,
		addon.JobDeprovision: k.DeprovisionJob,
	}
}
