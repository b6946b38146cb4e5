package addon

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// This file and its siblings (sync.go, webhook.go, logstream.go,
// deprovision_async.go, roll.go) keep Kiln in step with Heroku after
// provisioning: the app an add-on belongs to, whether Heroku still has it,
// its webhooks, the customer's log stream, asynchronous deprovisioning and
// credential rolls with a grace period. They work beside the provisioning
// pipeline (Service) rather than inside it: the pipeline is the one writer of
// an add-on's lifecycle, and everything here either reads it, records its own
// facts in the add-on's Link, or asks the pipeline to act.

// HerokuAddon is the add-on as the Platform API reports it (GET /addons/{id}).
type HerokuAddon struct {
	ID      string
	Name    string
	AppID   string
	AppName string
	State   string // provisioning, provisioned, deprovisioning, deprovisioned
}

// WebhookSubscription is what Kiln asks Heroku to send it about an add-on.
type WebhookSubscription struct {
	URL     string
	Secret  string
	Level   string   // "notify"
	Include []string // "api:addon-attachment", "api:app"
}

// Watcher is the part of the Platform API that keeps Kiln in step with
// Heroku. The heroku adapter implements it beside Platform; failures come
// back as domain errors as Platform's do (ENOTFOUND for an add-on Heroku no
// longer knows, EUNAUTHORIZED for a refused token).
type Watcher interface {
	GetAddon(ctx context.Context, accessToken string, id ID) (HerokuAddon, error)
	CreateWebhook(ctx context.Context, accessToken string, id ID, sub WebhookSubscription) (webhookID string, err error)
}

// LogLine is one line for the customer's app log (heroku logs).
type LogLine struct {
	At      time.Time
	Message string
	// Error marks a failure, written with error severity.
	Error bool
}

// LogWriter writes lines to an app's log stream (log_input_url). An error
// with code EINVALID or EUNAUTHORIZED means the URL was refused (4xx).
type LogWriter interface {
	WriteLog(ctx context.Context, url string, lines []LogLine) error
}

// Attachment is one app the add-on is attached to, as Heroku's webhooks
// report it.
type Attachment struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	AppID   string `json:"app_id"`
	AppName string `json:"app_name"`
}

// Link is what Kiln knows of an add-on from Heroku itself, and the
// bookkeeping of the work in these files. It lives beside the add-on (its
// own table), so recording it never contends with the pipeline.
type Link struct {
	AddonID ID

	AppID       string
	AppName     string
	HerokuState string    // as GET /addons/{id} last said
	SyncedAt    time.Time // the last successful GET /addons/{id}
	NextSyncAt  time.Time // when the sync sweep looks at it again

	// AccessRefused is why Heroku last refused the add-on's token (empty
	// when it did not); AccessRefusedAt when. Operators are alerted; no data
	// is destroyed for it.
	AccessRefused   string
	AccessRefusedAt time.Time

	WebhookID     string
	WebhookSecret string // secret: sealed at rest
	// SubscribedAt is when Kiln last asked Heroku for the webhook
	// subscription: with a WebhookID, when it was made; without, when
	// Heroku refused it (the sweep asks again after subscribeRetry).
	SubscribedAt time.Time
	Attachments  []Attachment

	// LogCursor is the id of the last audit-trail event written to the
	// app's log stream.
	LogCursor int64

	// MarkedDeprovisionedAt is when actions/deprovision succeeded
	// (asynchronous deprovisioning).
	MarkedDeprovisionedAt time.Time

	// RetiredVars are the driver vars of credentials replaced by a roll,
	// still valid until RetireAt, then revoked by a job (secret: sealed).
	RetiredVars Vars
	RetireAt    time.Time
}

// LinkStore keeps Links. Implementations map driver errors to domain errors.
type LinkStore interface {
	// Link returns the add-on's Link; an add-on without one yet gets a
	// zero Link with AddonID set.
	Link(ctx context.Context, id ID) (*Link, error)
	// UpdateLink loads (or starts) the Link under a row lock, calls fn and
	// saves it in one transaction. fn must not call the network.
	UpdateLink(ctx context.Context, id ID, fn func(l *Link) error) (*Link, error)
	// ApplyEvent runs fn like UpdateLink, once per event id: when the event
	// was applied before it returns applied=false and does not call fn.
	ApplyEvent(ctx context.Context, id ID, eventID string, fn func(l *Link) error) (applied bool, err error)
	// Links returns the Links of these add-ons (absent ones are missing
	// from the map), for listings.
	Links(ctx context.Context, ids []ID) (map[ID]*Link, error)
	// DueForSync lists live add-ons (provisioned, with Platform API access)
	// whose NextSyncAt is before now, or that have no Link yet.
	DueForSync(ctx context.Context, now time.Time, limit int) ([]ID, error)
	// Unsubscribed lists provisioned add-ons with Platform API access that
	// have no webhook subscription, updated before the given time, and not
	// refused one since refusedBefore (a Link with SubscribedAt and no
	// WebhookID was refused then).
	Unsubscribed(ctx context.Context, before, refusedBefore time.Time, limit int) ([]ID, error)
	// DueForRetire lists add-ons whose retired credentials are due.
	DueForRetire(ctx context.Context, now time.Time, limit int) ([]ID, error)
	// LogBacklog lists add-ons with a log_input_url that have audit-trail
	// events after their LogCursor recorded after since and not after
	// until.
	LogBacklog(ctx context.Context, since, until time.Time, limit int) ([]ID, error)
	// CountAccessRefused counts live add-ons whose token Heroku refused.
	CountAccessRefused(ctx context.Context) (int64, error)
	// PruneEvents forgets webhook event ids received before the given
	// time (Heroku's retries end long before).
	PruneEvents(ctx context.Context, before time.Time) error
	// EventsToLog returns the add-on's audit-trail events after its
	// LogCursor (all of them when it has no Link yet), oldest first, at
	// most limit: the log stream's next lines, cursor and events in one
	// read. It does not check that the add-on exists (the log job has just
	// read it): an unknown add-on has no events.
	EventsToLog(ctx context.Context, id ID, limit int) ([]Event, error)
	// AdvanceLogCursor moves the add-on's LogCursor forward to cursor,
	// never back (a writer that got further wins), starting its Link when
	// it has none, in one write: the log job's only write per batch. An
	// unknown add-on is ENOTFOUND.
	AdvanceLogCursor(ctx context.Context, id ID, cursor int64) error
}

// Jobs of the keeper.
const (
	JobSync      JobKind = "addon:sync"     // compare the add-on with GET /addons/{id}
	JobSubscribe JobKind = "addon:webhooks" // subscribe the add-on's webhooks
	JobLog       JobKind = "addon:log"      // write new milestones to the app's log stream
	JobRetire    JobKind = "addon:retire"   // revoke credentials whose grace ended
)

// LogDelay is how long the job queue holds a JobLog before it runs (the
// jobs adapter's spec for the kind). The milestones of one provision
// (provisioning started, resource ready, provisioned) are recorded within a
// second or two of each other, and an enqueue while the job still waits is
// deduplicated by its task id, so they go out in one job: one read of the
// add-on, one write to the app's log stream, one cursor update, instead of
// one of each per milestone. Two seconds covers a provision whose driver
// answers at once (Heroku's calls take 100–300 ms each) and keeps the
// customer's lines within a couple of seconds of the fact; a longer one
// would hold every line back for little more coalescing.
const LogDelay = 2 * time.Second

// ReasonRemovedOnHeroku is the audit-trail reason of a deprovision Kiln
// started itself because Heroku no longer has the add-on.
const ReasonRemovedOnHeroku = "removed on Heroku"

// WebhookEvents are the event types Kiln subscribes each add-on to.
var WebhookEvents = []string{"api:addon-attachment", "api:app"}

// Keeper keeps Kiln's add-ons in step with Heroku: the sync with GET
// /addons/{id}, webhooks, the app's log stream, asynchronous
// deprovisioning and credential rolls. It drives the add-on pipeline
// through Service and keeps its own facts in Links.
type Keeper struct {
	Service *Service
	Links   LinkStore
	Watcher Watcher   // nil: no sync, no webhooks
	Logs    LogWriter // nil: no log stream

	// SyncInterval is how often each live add-on is compared with Heroku
	// (HEROKU_SYNC_INTERVAL); zero turns the sync off.
	SyncInterval time.Duration
	// WebhookURL is where Heroku delivers add-on webhooks
	// ($PUBLIC_URL/heroku/webhooks); empty turns webhooks off.
	WebhookURL string
	// AsyncDeprovision answers Heroku's DELETE with 202 and calls
	// actions/deprovision once the resource is gone (ASYNC_DEPROVISION).
	AsyncDeprovision bool
	// Grace is how long credentials replaced by a roll keep working
	// (CREDENTIAL_GRACE).
	Grace time.Duration
	// AccessRefused, when set, is told each time Heroku refuses an
	// add-on's token during a sync (a metric counts them).
	AccessRefused func(id ID)

	mu        sync.Mutex
	lastSweep time.Time // the last sweep that scanned for syncs

	// logJobs remembers this process's recent log-job enqueues, so the
	// milestones that follow within logSkip skip theirs (logmemo.go).
	logJobs logMemo
}

func (k *Keeper) log() *slog.Logger { return k.Service.log() }

// Link returns what Kiln knows of the add-on from Heroku (its app, the
// credentials a roll retired), for the dashboard.
func (k *Keeper) Link(ctx context.Context, id ID) (*Link, error) { return k.Links.Link(ctx, id) }

// LinksOf returns the Links of these add-ons (absent ones are missing from
// the map), for the operator API's listings.
func (k *Keeper) LinksOf(ctx context.Context, ids []ID) (map[ID]*Link, error) {
	return k.Links.Links(ctx, ids)
}

// CountAccessRefused counts live add-ons whose token Heroku refused at the
// last sync, for /metrics.
func (k *Keeper) CountAccessRefused(ctx context.Context) (int64, error) {
	return k.Links.CountAccessRefused(ctx)
}

func (k *Keeper) now() time.Time { return k.Service.now() }

// enqueue asks for a job without failing the caller: every job here has a
// sweep that finds its work again. The error, already logged, is returned
// for the one caller that must know it (followLog remembers only an
// enqueue that succeeded); the others ignore it.
func (k *Keeper) enqueue(ctx context.Context, kind JobKind, id ID) error {
	err := k.Service.queue.Enqueue(ctx, kind, id)
	if err != nil {
		k.log().WarnContext(ctx, "enqueue failed; the next sweep will retry", "addon", id, "job", kind, "err", err)
	}
	return err
}
