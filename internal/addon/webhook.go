package addon

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"time"
)

// Subscribe subscribes the add-on to the webhook events Kiln follows
// (WebhookEvents, level notify) at WebhookURL, with a secret of Kiln's own.
// The secret is recorded (sealed) before the call, so a retry after a lost
// answer subscribes with the same one; the webhook id is recorded after.
// It runs as a job after provisioning: a failure never blocks provisioning,
// the job is retried and the sweep finds add-ons still unsubscribed.
func (k *Keeper) Subscribe(ctx context.Context, id ID) error {
	if k.Watcher == nil || k.WebhookURL == "" {
		return nil
	}
	a, err := k.Service.store.Get(ctx, id)
	if err != nil {
		return err
	}
	if a.State != StateProvisioned || a.Tokens == nil {
		return nil
	}
	l, err := k.Links.UpdateLink(ctx, id, func(l *Link) error {
		if l.WebhookSecret == "" {
			b := make([]byte, 32)
			if _, err := rand.Read(b); err != nil {
				return Wrap(EINTERNAL, err, "Cannot make a webhook secret.")
			}
			l.WebhookSecret = hex.EncodeToString(b)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if l.WebhookID != "" {
		return nil
	}
	u, err := url.Parse(k.WebhookURL)
	if err != nil {
		return Wrap(EINTERNAL, err, "The webhook URL is not valid.")
	}
	q := u.Query()
	q.Set("addon_id", string(id))
	u.RawQuery = q.Encode()
	sub := WebhookSubscription{URL: u.String(), Secret: l.WebhookSecret, Level: "notify", Include: WebhookEvents}
	var hookID string
	err = k.Service.Exclusive(ctx, id, 0, func(ctx context.Context, c *Claim) error {
		if a := c.Addon(); a.State != StateProvisioned || a.Tokens == nil {
			return nil
		}
		// Again, as the add-on's writer: a subscription made by another
		// job since the read above must not be made twice.
		if l, err := k.Links.Link(ctx, id); err != nil || l.WebhookID != "" {
			return err
		}
		err := k.Service.withToken(ctx, c, func(token string) error {
			var err error
			hookID, err = k.Watcher.CreateWebhook(ctx, token, id, sub)
			return err
		})
		if err != nil {
			return err
		}
		// Recorded before the claim is let go, so the next writer sees
		// it, and retried with the id in hand: lost, it would have the
		// next job make a second subscription.
		return k.Service.inHand(ctx, "webhook subscription", id, func(ctx context.Context) error {
			_, err := k.Links.UpdateLink(ctx, id, func(l *Link) error {
				if l.WebhookID != "" && l.WebhookID != hookID {
					// Only after this claim was lost: the next writer
					// subscribed too. Its subscription is the one kept.
					k.log().ErrorContext(ctx, "a second webhook subscription was made; delete it on Heroku", "addon", id, "webhook", hookID, "kept", l.WebhookID)
					return nil
				}
				l.WebhookID, l.SubscribedAt = hookID, k.now()
				return nil
			})
			return err
		})
	})
	if err != nil {
		if Transient(err) {
			return fmt.Errorf("subscribe webhooks: %w", err)
		}
		// A refusal (a revoked token, an add-on gone, webhooks not
		// allowed): retrying will not help now. It is recorded, so the
		// sweep asks again only after subscribeRetry, not every minute.
		k.log().WarnContext(ctx, "webhook subscription refused", "addon", id, "err", err, "retry_in", subscribeRetry)
		_, err = k.Links.UpdateLink(ctx, id, func(l *Link) error {
			if l.WebhookID == "" {
				l.SubscribedAt = k.now()
			}
			return nil
		})
		return err
	}
	return nil
}

// subscribeRetry is how long the sweep waits before asking Heroku again
// for a webhook subscription it refused.
const subscribeRetry = time.Hour

// WebhookRefused is the one answer to a delivery that cannot be verified
// (an add-on id that is not one, no secret, a wrong signature), so a
// caller probing the receiver learns nothing.
func WebhookRefused() error { return Errorf(EUNAUTHORIZED, "The webhook signature is not valid.") }

// WebhookSignatureHeader is the header carrying Heroku's webhook signature.
const WebhookSignatureHeader = "Heroku-Webhook-Hmac-SHA256"

// webhookEvent is the part of Heroku's delivery body Kiln reads.
type webhookEvent struct {
	ID        string          `json:"id"`
	Action    string          `json:"action"`
	Resource  string          `json:"resource"`
	CreatedAt time.Time       `json:"created_at"`
	Data      json.RawMessage `json:"data"`
	Metadata  struct {
		Event struct {
			ID      string `json:"id"`
			Include string `json:"include"`
		} `json:"event"`
	} `json:"webhook_metadata"`
}

type webhookRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// ReceiveWebhook checks and applies one webhook delivery for the add-on:
// the signature (base64 HMAC-SHA256 of the raw body with the add-on's
// secret) is compared in constant time and a mismatch is EUNAUTHORIZED with
// nothing changed; an event applied before is acknowledged and skipped; an
// app event records the app's new name, attachment events the list of
// attachments. It does only database work, so Heroku gets its answer fast.
func (k *Keeper) ReceiveWebhook(ctx context.Context, id ID, body []byte, signature string) error {
	refused := WebhookRefused()
	if signature == "" {
		return refused
	}
	l, err := k.Links.Link(ctx, id)
	if err != nil {
		if ErrorCode(err) == ENOTFOUND {
			return refused
		}
		return err
	}
	if l.WebhookSecret == "" {
		return refused
	}
	got, err := base64.StdEncoding.DecodeString(signature)
	if err != nil {
		return refused
	}
	m := hmac.New(sha256.New, []byte(l.WebhookSecret))
	m.Write(body)
	if !hmac.Equal(got, m.Sum(nil)) {
		return refused
	}
	var ev webhookEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		return Errorf(EMALFORMED, "The webhook body is not JSON.")
	}
	if ev.ID == "" {
		ev.ID = ev.Metadata.Event.ID
	}
	if ev.ID == "" {
		return Errorf(EINVALID, "The webhook event has no id.")
	}
	typ := ev.Metadata.Event.Include
	if typ == "" {
		typ = "api:" + ev.Resource
	}
	applied, err := k.Links.ApplyEvent(ctx, id, ev.ID, func(l *Link) error {
		return applyWebhook(l, typ, ev)
	})
	if err != nil {
		return err
	}
	if !applied {
		k.log().DebugContext(ctx, "webhook event already applied", "addon", id, "event", ev.ID)
		return nil
	}
	if typ == "api:addon-attachment" && ev.Action != "destroy" {
		return k.takeLogInputURL(ctx, id, ev.Data)
	}
	return nil
}

// takeLogInputURL records the log_input_url an attachment event carries
// for the add-on's own app: Heroku rotates it, and the log stream re-reads
// the add-on's URL after a refusal. The URL holds a token, so it goes into
// the sealed column only, never into the audit trail.
func (k *Keeper) takeLogInputURL(ctx context.Context, id ID, data json.RawMessage) error {
	var at struct {
		LogInputURL string     `json:"log_input_url"`
		App         webhookRef `json:"app"`
	}
	if json.Unmarshal(data, &at) != nil || at.LogInputURL == "" {
		return nil
	}
	if u, err := url.Parse(at.LogInputURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil
	}
	l, err := k.Links.Link(ctx, id)
	if err != nil {
		return err
	}
	if l.AppID != "" && at.App.ID != l.AppID {
		return nil // another app's attachment: its log stream is not the owner's
	}
	_, err = k.Service.store.Update(ctx, id, func(ctx context.Context, a *Addon) error {
		if a.LogInputURL != "" && a.State != StateDeprovisioned {
			a.LogInputURL = at.LogInputURL
		}
		return nil
	})
	return err
}

// applyWebhook records what an event says about the add-on's apps.
func applyWebhook(l *Link, typ string, ev webhookEvent) error {
	switch typ {
	case "api:app":
		var app webhookRef
		if err := json.Unmarshal(ev.Data, &app); err != nil {
			return Errorf(EMALFORMED, "The app event's data cannot be read.")
		}
		if app.ID == "" || (l.AppID != "" && app.ID != l.AppID) {
			// Another app the add-on is attached to: its name lives in
			// the attachments list.
			for i := range l.Attachments {
				if l.Attachments[i].AppID == app.ID && ev.Action != "destroy" {
					l.Attachments[i].AppName = app.Name
				}
			}
			return nil
		}
		if ev.Action != "destroy" && app.Name != "" {
			l.AppID, l.AppName = app.ID, app.Name
			for i := range l.Attachments {
				if l.Attachments[i].AppID == app.ID {
					l.Attachments[i].AppName = app.Name
				}
			}
		}
	case "api:addon-attachment":
		var at struct {
			webhookRef
			App webhookRef `json:"app"`
		}
		if err := json.Unmarshal(ev.Data, &at); err != nil || at.ID == "" {
			return Errorf(EMALFORMED, "The attachment event's data cannot be read.")
		}
		kept := l.Attachments[:0:0]
		for _, x := range l.Attachments {
			if x.ID != at.ID {
				kept = append(kept, x)
			}
		}
		if ev.Action != "destroy" {
			kept = append(kept, Attachment{ID: at.ID, Name: at.Name, AppID: at.App.ID, AppName: at.App.Name})
		}
		l.Attachments = kept
	}
	return nil
}
