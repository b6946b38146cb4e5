package web

import (
	"context"
	"sort"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/kiln-dev/kiln/internal/addon"
)

// This file is the operator API's representations: what an add-on, an
// event and a plan look like on the wire (operator_schema.json describes
// them). Secrets never appear: no tokens, no grant, no config var values,
// no log drain token or log input URL (it embeds a Logplex token).

// opTimeLayout is the design guide's timestamp: UTC, ISO 8601, to the second.
const opTimeLayout = "2006-01-02T15:04:05Z"

// Namespaces of the derived uuids of events and plans, which have no uuid
// of their own: the same event or plan always gets the same id.
var (
	opEventNamespace = uuid.MustParse("6b696c6e-0000-5000-8000-000000000001")
	opPlanNamespace  = uuid.MustParse("6b696c6e-0000-5000-8000-000000000002")
)

type opPlanRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type opSteps struct {
	GrantExchangedAt  *string `json:"grant_exchanged_at"`
	ResourceCreatedAt *string `json:"resource_created_at"`
	ConfigPushedAt    *string `json:"config_pushed_at"`
	ProvisionedAt     *string `json:"provisioned_at"`
	DeprovisionedAt   *string `json:"deprovisioned_at"`
}

// opResource is an add-on as operators see it.
type opResource struct {
	ID             addon.ID          `json:"id"`
	Name           string            `json:"name"`
	State          addon.State       `json:"state"`
	Reason         *string           `json:"reason"`
	Plan           opPlanRef         `json:"plan"`
	PendingPlan    *opPlanRef        `json:"pending_plan"`
	Region         string            `json:"region"`
	CallbackURL    string            `json:"callback_url"`
	Options        map[string]string `json:"options"`
	ConfigVars     []string          `json:"config_vars"`
	PlatformAccess bool              `json:"platform_access"`
	Steps          opSteps           `json:"steps"`
	Deadline       *string           `json:"deadline"`
	CreatedAt      string            `json:"created_at"`
	UpdatedAt      string            `json:"updated_at"`
	App            *opResourceRef    `json:"app"`
	Heroku         opHeroku          `json:"heroku"`
}

// opHeroku is what Kiln knows of the add-on from Heroku itself (the sync
// with GET /addons/{id} and add-on webhooks), and the state of a credential
// roll.
type opHeroku struct {
	State                    *string        `json:"state"`
	SyncedAt                 *string        `json:"synced_at"`
	AccessRefused            *string        `json:"access_refused"`
	AccessRefusedAt          *string        `json:"access_refused_at"`
	WebhookSubscribed        bool           `json:"webhook_subscribed"`
	Attachments              []opAttachment `json:"attachments"`
	OldCredentialsValidUntil *string        `json:"old_credentials_valid_until"`
}

type opAttachment struct {
	ID   string        `json:"id"`
	Name string        `json:"name"`
	App  opResourceRef `json:"app"`
}

// withLinks adds what Kiln knows from Heroku to the views, with one read
// for the whole page.
func (op *operatorAPI) withLinks(ctx context.Context, views []opResource) error {
	for i := range views {
		views[i].Heroku.Attachments = []opAttachment{}
	}
	if op.keeper == nil || len(views) == 0 {
		return nil
	}
	ids := make([]addon.ID, len(views))
	for i, v := range views {
		ids[i] = v.ID
	}
	links, err := op.keeper.LinksOf(ctx, ids)
	if err != nil {
		return err
	}
	for i := range views {
		l := links[views[i].ID]
		if l == nil {
			continue
		}
		h := &views[i].Heroku
		if l.AppID != "" || l.AppName != "" {
			views[i].App = &opResourceRef{ID: l.AppID, Name: l.AppName}
		}
		if l.HerokuState != "" {
			h.State = &l.HerokuState
		}
		h.SyncedAt = opTimeOrNil(l.SyncedAt)
		if l.AccessRefused != "" {
			h.AccessRefused = &l.AccessRefused
		}
		h.AccessRefusedAt = opTimeOrNil(l.AccessRefusedAt)
		h.WebhookSubscribed = l.WebhookID != ""
		for _, at := range l.Attachments {
			h.Attachments = append(h.Attachments, opAttachment{ID: at.ID, Name: at.Name, App: opResourceRef{ID: at.AppID, Name: at.AppName}})
		}
		if l.RetiredVars != nil {
			h.OldCredentialsValidUntil = opTimeOrNil(l.RetireAt)
		}
	}
	return nil
}

// view is one add-on's representation with its Heroku link.
func (op *operatorAPI) view(ctx context.Context, a *addon.Addon) (opResource, error) {
	v := []opResource{op.resource(a)}
	err := op.withLinks(ctx, v)
	return v[0], err
}

func (op *operatorAPI) resource(a *addon.Addon) opResource {
	v := opResource{
		ID:             a.ID,
		Name:           a.Name,
		State:          a.State,
		Plan:           op.opPlanRef(a.Plan),
		Region:         a.Region,
		CallbackURL:    a.CallbackURL,
		Options:        a.Options,
		ConfigVars:     []string{},
		PlatformAccess: a.Tokens != nil,
		Steps: opSteps{
			GrantExchangedAt:  opTimeOrNil(a.GrantExchangedAt),
			ResourceCreatedAt: opTimeOrNil(a.ResourceCreatedAt),
			ConfigPushedAt:    opTimeOrNil(a.ConfigPushedAt),
			ProvisionedAt:     opTimeOrNil(a.ProvisionedAt),
			DeprovisionedAt:   opTimeOrNil(a.DeprovisionedAt),
		},
		Deadline:  opTimeOrNil(a.Deadline),
		CreatedAt: opTime(a.CreatedAt),
		UpdatedAt: opTime(a.UpdatedAt),
	}
	if a.Reason != "" {
		v.Reason = &a.Reason
	}
	if a.PendingPlan != "" {
		p := op.opPlanRef(a.PendingPlan)
		v.PendingPlan = &p
	}
	if v.Options == nil {
		v.Options = map[string]string{}
	}
	for name := range op.svc.Config(a) {
		v.ConfigVars = append(v.ConfigVars, name)
	}
	sort.Strings(v.ConfigVars)
	return v
}

func (op *operatorAPI) opPlanRef(slug string) opPlanRef {
	return opPlanRef{ID: opPlanID(op.svc.DriverName(), slug), Name: slug}
}

func opPlanID(driver, slug string) string {
	return uuid.NewSHA1(opPlanNamespace, []byte(driver+"/"+slug)).String()
}

type opResourceRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// opEvent is one line of the audit trail.
type opEvent struct {
	ID        string        `json:"id"`
	Sequence  int64         `json:"sequence"`
	Kind      string        `json:"kind"`
	State     addon.State   `json:"state"`
	Message   string        `json:"message"`
	Resource  opResourceRef `json:"resource"`
	CreatedAt string        `json:"created_at"`
	UpdatedAt string        `json:"updated_at"`
}

func opEventOf(a *addon.Addon, e addon.Event) opEvent {
	at := opTime(e.At)
	return opEvent{
		ID:        uuid.NewSHA1(opEventNamespace, []byte(string(a.ID)+"/"+strconv.FormatInt(e.ID, 10))).String(),
		Sequence:  e.ID,
		Kind:      e.Kind,
		State:     e.State,
		Message:   e.Message,
		Resource:  opResourceRef{ID: string(a.ID), Name: a.Name},
		CreatedAt: at,
		UpdatedAt: at, // events never change
	}
}

type opDriverRef struct {
	Name string `json:"name"`
}

// opPlan is a plan of the driver's catalog.
type opPlan struct {
	ID        string           `json:"id"`
	Name      string           `json:"name"`
	HumanName string           `json:"human_name"`
	Limits    map[string]int64 `json:"limits"`
	Driver    opDriverRef      `json:"driver"`
}

func (op *operatorAPI) plan(p addon.Plan) opPlan {
	driver := op.svc.DriverName()
	v := opPlan{ID: opPlanID(driver, p.Slug), Name: p.Slug, HumanName: p.Name, Limits: p.Limits, Driver: opDriverRef{Name: driver}}
	if v.Limits == nil {
		v.Limits = map[string]int64{}
	}
	return v
}

func opTime(t time.Time) string { return t.UTC().Format(opTimeLayout) }

func opTimeOrNil(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := opTime(t)
	return &s
}
