package addon_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"reflect"
	"regexp"
	"testing"

	"github.com/kiln-dev/kiln/internal/addon"
)

func TestKeeperSubscribe(t *testing.T) {
	const create = "CreateWebhook #1 access-1"
	tests := []struct {
		name    string
		shape   []func(a *addon.Addon)
		setup   func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID)
		code    string
		hook    string // the webhook id recorded
		secret  bool   // a secret is recorded
		refused bool   // the refusal is recorded (SubscribedAt without a webhook id)
		calls   []string
	}{
		{
			name:  "subscribed with a secret of Kiln's own",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				f.watcher.CreateWebhookFn = func(ctx context.Context, token string, id addon.ID, sub addon.WebhookSubscription) (string, error) {
					f.called("CreateWebhook %s %s", short(id), token)
					want := addon.WebhookSubscription{URL: webhookURL + "?addon_id=" + string(id), Secret: f.link(t, id).WebhookSecret,
						Level: "notify", Include: addon.WebhookEvents}
					if !reflect.DeepEqual(sub, want) || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(sub.Secret) {
						t.Errorf("subscription %+v, want %+v with a recorded 32-byte secret", sub, want)
					}
					return "hook-1", nil
				}
			},
			hook: "hook-1", secret: true, calls: []string{create},
		},
		{
			name:  "a retry subscribes with the secret recorded before",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				f.setLink(t, id, func(l *addon.Link) { l.WebhookSecret = "kept" })
				f.watcher.CreateWebhookFn = func(ctx context.Context, token string, id addon.ID, sub addon.WebhookSubscription) (string, error) {
					f.called("CreateWebhook %s %s", short(id), token)
					if sub.Secret != "kept" {
						t.Errorf("secret %q, want the one recorded before the lost answer", sub.Secret)
					}
					return "hook-1", nil
				}
			},
			hook: "hook-1", secret: true, calls: []string{create},
		},
		{
			name:  "subscribed already",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				f.setLink(t, id, func(l *addon.Link) { l.WebhookID, l.WebhookSecret = "hook-0", "s" })
			},
			hook: "hook-0", secret: true,
		},
		{
			name: "not provisioned",
		},
		{
			name:  "webhooks are off",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) { k.WebhookURL = "" },
		},
		{
			name:  "Heroku is down: retried with the same secret",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				f.watcher.CreateWebhookFn = func(ctx context.Context, token string, id addon.ID, sub addon.WebhookSubscription) (string, error) {
					f.called("CreateWebhook %s %s", short(id), token)
					return "", addon.Errorf(addon.EUNAVAILABLE, "Down.")
				}
			},
			code: addon.EUNAVAILABLE, secret: true, calls: []string{create},
		},
		{
			name:  "Heroku refuses: recorded, for the sweep to ask again later",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				f.watcher.CreateWebhookFn = func(ctx context.Context, token string, id addon.ID, sub addon.WebhookSubscription) (string, error) {
					f.called("CreateWebhook %s %s", short(id), token)
					return "", addon.Errorf(addon.EFORBIDDEN, "No.")
				}
			},
			secret: true, refused: true, calls: []string{create},
		},
		{
			// Recorded after the claim is let go, a second job could claim
			// in between, find none, and subscribe again.
			name:  "recorded before the claim is let go",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				f.store.Before = func(op string, _ addon.ID) error {
					if op == "Release" && f.link(t, id).WebhookID != "hook-1" {
						t.Error("the claim is let go before the subscription is recorded")
					}
					return nil
				}
			},
			hook: "hook-1", secret: true, calls: []string{"CreateWebhook #1 access-1"},
		},
		{
			// Only possible once the claim was lost: the next writer's
			// subscription, recorded first, is kept.
			name:  "another writer's subscription recorded while the call was out",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				f.watcher.CreateWebhookFn = func(ctx context.Context, token string, id addon.ID, sub addon.WebhookSubscription) (string, error) {
					f.called("CreateWebhook %s %s", short(id), token)
					f.setLink(t, id, func(l *addon.Link) { l.WebhookID = "hook-0" })
					return "hook-1", nil
				}
			},
			hook: "hook-0", secret: true, calls: []string{"CreateWebhook #1 access-1"},
		},
		{
			name:  "subscribed by another job before the claim",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				once(f, "Acquire", func() { f.setLink(t, id, func(l *addon.Link) { l.WebhookID = "hook-0" }) })
			},
			hook: "hook-0", secret: true,
		},
		{
			name:  "a webhook URL that is not one",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) { k.WebhookURL = "://nowhere" },
			code:  addon.EINTERNAL, secret: true,
		},
		{
			name:  "deprovisioned before the claim",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				once(f, "Acquire", func() { f.update(t, id, inState(addon.StateDeprovisioning, "")) })
			},
			secret: true,
		},
		{
			name:  "the webhook id's save fails once: retried in hand",
			shape: []func(a *addon.Addon){provisioned},
			setup: func(f *fixture, t *testing.T, k *addon.Keeper, id addon.ID) {
				n := 0
				f.links.Before = func(op string, _ addon.ID) error {
					if op == "UpdateLink" {
						if n++; n == 2 {
							return errDown
						}
					}
					return nil
				}
			},
			hook: "hook-1", secret: true, calls: []string{create},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, k, id := arrangeKeeper(t, tt.shape, tt.setup)
			wantCode(t, k.Subscribe(context.Background(), id), tt.code)
			f.links.Before = nil
			l := f.link(t, id)
			if l.WebhookID != tt.hook || (l.WebhookSecret != "") != tt.secret {
				t.Errorf("webhook %q, secret %q; want %q, a secret %v", l.WebhookID, l.WebhookSecret, tt.hook, tt.secret)
			}
			if (tt.hook == "hook-1" || tt.refused) != l.SubscribedAt.Equal(t0) {
				t.Errorf("subscribed at %v; want %v only when subscribed or refused now", l.SubscribedAt, t0)
			}
			f.wantCalls(t, tt.calls...)
			f.wantFree(t, id)
		})
	}
}

// attachments checks the Link records n attachments.
func attachments(n int) func(t *testing.T, l *addon.Link) {
	return func(t *testing.T, l *addon.Link) {
		if len(l.Attachments) != n {
			t.Errorf("attachments %+v, want %d", l.Attachments, n)
		}
	}
}

// sign is Heroku's signature of a webhook body with the add-on's secret.
func sign(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestKeeperReceiveWebhook(t *testing.T) {
	const secret = "shh"
	appEvent := `{"id":"ev-1","action":"update","resource":"app","data":{"id":"app-1","name":"renamed"}}`
	attach := func(action, app, url string) string {
		return `{"action":"` + action + `","resource":"addon-attachment","webhook_metadata":{"event":{"id":"ev-` + action + app +
			`","include":"api:addon-attachment"}},"data":{"id":"att-` + app + `","name":"DB","app":{"id":"` + app + `","name":"` + app +
			`-name"},"log_input_url":"` + url + `"}}`
	}
	tests := []struct {
		name    string
		link    func(l *addon.Link)
		body    string
		sig     func(body string) string // nil: signed with the secret
		code    string
		want    func(t *testing.T, l *addon.Link)
		logURL  string // the add-on's log_input_url afterwards
		unknown bool   // for an add-on Kiln does not have
		seen    string // an event id applied before
	}{
		{
			name: "an app renamed",
			body: appEvent,
			want: func(t *testing.T, l *addon.Link) {
				if l.AppName != "renamed" || l.Attachments[0].AppName != "renamed" {
					t.Errorf("link %+v", l)
				}
			},
		},
		{
			name: "an event applied before is skipped",
			seen: "ev-1",
			link: func(l *addon.Link) { l.AppName = "kept" },
			body: appEvent,
			want: func(t *testing.T, l *addon.Link) {
				if l.AppName != "kept" {
					t.Errorf("app name %q: applied twice", l.AppName)
				}
			},
		},
		{
			name: "an attachment to the owner's app brings a new log_input_url",
			body: attach("create", "app-1", "https://logs.example/new"),
			want: func(t *testing.T, l *addon.Link) {
				if len(l.Attachments) != 1 || l.Attachments[0].AppName != "app-1-name" {
					t.Errorf("attachments %+v", l.Attachments)
				}
			},
			logURL: "https://logs.example/new",
		},
		{
			name: "a redelivered attachment does not bring back its log_input_url",
			seen: "ev-createapp-1",
			body: attach("create", "app-1", "https://logs.example/new"),
		},
		{
			name: "another app's attachment keeps the owner's log stream",
			body: attach("create", "app-2", "https://logs.example/other"),
			want: attachments(2),
		},
		{
			name: "a log_input_url that is not a URL is ignored",
			body: attach("update", "app-1", "ftp://x"),
		},
		{
			name: "an attachment without a log_input_url",
			body: attach("create", "app-1", ""),
		},
		{
			name: "an attachment destroyed",
			body: attach("destroy", "app-1", ""),
			want: attachments(0),
		},
		{name: "no signature", body: appEvent, sig: func(string) string { return "" }, code: addon.EUNAUTHORIZED},
		{name: "a wrong signature", body: appEvent, sig: func(b string) string { return sign("guess", b) }, code: addon.EUNAUTHORIZED},
		{name: "a signature that is not base64", body: appEvent, sig: func(string) string { return "%%%" }, code: addon.EUNAUTHORIZED},
		{name: "no secret recorded", link: func(l *addon.Link) { l.WebhookSecret = "" }, body: appEvent, code: addon.EUNAUTHORIZED},
		{name: "an add-on Kiln does not have", body: appEvent, unknown: true, code: addon.EUNAUTHORIZED},
		{name: "a body that is not JSON", body: "{", code: addon.EMALFORMED},
		{name: "an event without an id", body: `{"resource":"app","data":{}}`, code: addon.EINVALID},
		{name: "an app event whose data cannot be read", body: `{"id":"ev-9","resource":"app","data":[]}`, code: addon.EMALFORMED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t)
			k := f.keeper()
			id := f.add(t, provisioned, func(a *addon.Addon) { a.LogInputURL = "https://logs.example/old" })
			f.setLink(t, id, func(l *addon.Link) {
				l.WebhookSecret, l.AppID, l.AppName = secret, "app-1", "my-app"
				l.Attachments = []addon.Attachment{{ID: "att-app-1", Name: "DB", AppID: "app-1", AppName: "my-app"}}
			})
			if tt.seen != "" {
				if _, err := f.links.ApplyEvent(ctx, id, tt.seen, func(*addon.Link) error { return nil }); err != nil {
					t.Fatal(err)
				}
			}
			if tt.link != nil {
				f.setLink(t, id, tt.link)
			}
			sig := sign(secret, tt.body)
			if tt.sig != nil {
				sig = tt.sig(tt.body)
			}
			target := id
			if tt.unknown {
				target = f.nextID()
			}
			before := f.link(t, id)
			err := k.ReceiveWebhook(ctx, target, []byte(tt.body), sig)
			wantCode(t, err, tt.code)
			if tt.code != "" {
				if after := f.link(t, id); !reflect.DeepEqual(after, before) {
					t.Errorf("a refused delivery changed the link: %+v", after)
				}
			}
			if tt.want != nil {
				tt.want(t, f.link(t, id))
			}
			want := tt.logURL
			if want == "" {
				want = "https://logs.example/old"
			}
			if got := f.get(t, id).LogInputURL; got != want {
				t.Errorf("log_input_url %q, want %q", got, want)
			}
		})
	}
}

// TestKeeperReceiveWebhookStoreDown: a delivery that cannot be read or
// applied is an error Heroku retries, not a refusal.
func TestKeeperReceiveWebhookStoreDown(t *testing.T) {
	for _, op := range []string{"Link", "ApplyEvent"} {
		t.Run(op, func(t *testing.T) {
			f := newFixture(t)
			k := f.keeper()
			id := f.add(t, provisioned)
			f.setLink(t, id, func(l *addon.Link) { l.WebhookSecret = "shh" })
			f.links.Before = func(o string, _ addon.ID) error {
				if o == op {
					return errDown
				}
				return nil
			}
			body := `{"id":"ev-1","resource":"app","data":{"id":"app-1","name":"x"}}`
			wantCode(t, k.ReceiveWebhook(context.Background(), id, []byte(body), sign("shh", body)), addon.EUNAVAILABLE)
		})
	}
}
