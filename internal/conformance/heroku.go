package conformance

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/kiln-dev/kiln/internal/herokusim"
)

// The checks of staying in step with Heroku (add-on webhooks, the app's log
// stream, asynchronous deprovisioning). Each runs when its Options field
// says the Kiln under test has the feature on.
const (
	CheckWebhookSubscribed = "webhooks: Kiln subscribes the add-on (notify, api:addon-attachment and api:app, a secret)"
	CheckWebhookSigned     = "webhooks: a signed delivery gets 2xx"
	CheckWebhookBadSig     = "webhooks: a bad signature gets 401"
	CheckWebhookRepeat     = "webhooks: a repeated event gets 2xx"
	CheckLogStream         = "log stream: milestones reach log_input_url as RFC 5424 frames"
	CheckLogNoSecrets      = "log stream: no line carries a config value or token"
	CheckAsyncDeprovision  = "deprovision (async): actions/deprovision reaches Heroku once the resource is gone"
)

// webhooks checks Kiln's subscription and its answers to signed, badly
// signed and repeated deliveries.
func (r *runner) webhooks(ctx context.Context, id string) {
	if !r.o.Webhooks {
		return
	}
	var hook herokusim.Webhook
	ok := r.check(CheckWebhookSubscribed, func() (string, error) {
		wctx, cancel := context.WithTimeout(ctx, r.o.ProvisionTimeout)
		defer cancel()
		for {
			hooks, err := r.o.Sim.Webhooks(wctx, id)
			if err == nil && len(hooks) > 0 {
				hook = hooks[0]
				break
			}
			select {
			case <-wctx.Done():
				return "", fmt.Errorf("no webhook subscription after %s (is HEROKU_WEBHOOKS off, or PUBLIC_URL unset?)", r.o.ProvisionTimeout)
			case <-time.After(r.o.Poll):
			}
		}
		switch {
		case hook.Level != "notify":
			return "", fmt.Errorf("level %q, want notify", hook.Level)
		case !slices.Contains(hook.Include, "api:addon-attachment") || !slices.Contains(hook.Include, "api:app"):
			return "", fmt.Errorf("include %v, want api:addon-attachment and api:app", hook.Include)
		case len(hook.Secret) < 32:
			return "", fmt.Errorf("a secret of %d characters; want Kiln's own, at least 32", len(hook.Secret))
		}
		return "subscribed at " + redact(hook.URL), nil
	})
	if !ok {
		r.skip("no webhook subscription", CheckWebhookSigned, CheckWebhookBadSig, CheckWebhookRepeat)
		return
	}
	deliver := func(ev herokusim.Event) (int, error) {
		out, err := r.o.Sim.Deliver(ctx, id, ev)
		if err != nil {
			return 0, err
		}
		for _, d := range out {
			if d.WebhookID == hook.ID {
				if d.Error != "" {
					return 0, fmt.Errorf("the delivery to %s failed: %s", redact(hook.URL), d.Error)
				}
				return d.Status, nil
			}
		}
		return 0, fmt.Errorf("the event reached no subscription")
	}
	eventID := "conformance-" + id
	r.check(CheckWebhookSigned, func() (string, error) {
		st, err := deliver(herokusim.Event{Type: "api:app", Action: "update", ID: eventID})
		if err != nil {
			return "", err
		}
		if st/100 != 2 {
			return "", fmt.Errorf("got %d; want 2xx", st)
		}
		return fmt.Sprintf("%d", st), nil
	})
	r.check(CheckWebhookBadSig, func() (string, error) {
		st, err := deliver(herokusim.Event{Type: "api:app", Action: "update", BadSignature: true})
		if err != nil {
			return "", err
		}
		if st != http.StatusUnauthorized {
			return "", fmt.Errorf("got %d; want 401: Heroku-Webhook-Hmac-SHA256 must be checked", st)
		}
		return "401", nil
	})
	r.check(CheckWebhookRepeat, func() (string, error) {
		st, err := deliver(herokusim.Event{Type: "api:app", Action: "update", ID: eventID})
		if err != nil {
			return "", err
		}
		if st/100 != 2 {
			return "", fmt.Errorf("got %d; want 2xx (Heroku delivers at least once)", st)
		}
		return fmt.Sprintf("%d", st), nil
	})
}

// logStream checks the lines Kiln wrote to the app's log stream while the
// add-on was provisioned.
func (r *runner) logStream(ctx context.Context, id string, st *provisionState) {
	if !r.o.LogStream {
		return
	}
	var lines []herokusim.LogLine
	ok := r.check(CheckLogStream, func() (string, error) {
		wctx, cancel := context.WithTimeout(ctx, r.o.ProvisionTimeout)
		defer cancel()
		for {
			var err error
			lines, err = r.o.Sim.Logs(wctx, id)
			if err == nil && hasPrefix(lines, "Provisioning started") && hasPrefix(lines, "Provisioned") {
				break
			}
			select {
			case <-wctx.Done():
				return "", fmt.Errorf("%d lines after %s, want \"Provisioning started\" and \"Provisioned\"", len(lines), r.o.ProvisionTimeout)
			case <-time.After(r.o.Poll):
			}
		}
		return fmt.Sprintf("%d well-formed frames", len(lines)), nil
	})
	if !ok {
		r.skip("no log lines", CheckLogNoSecrets)
		return
	}
	r.check(CheckLogNoSecrets, func() (string, error) {
		for _, l := range lines {
			for _, v := range st.config {
				s, _ := v.(string)
				if pw := password(s); pw != "" && strings.Contains(l.Raw, pw) {
					return "", fmt.Errorf("a line carries a config value's password: %q", redact(l.Message))
				}
			}
			if strings.Contains(strings.ToLower(l.Raw), "token=") || strings.Contains(l.Raw, "://") {
				return "", fmt.Errorf("a line carries a URL or token: %q", redact(l.Message))
			}
		}
		return fmt.Sprintf("%d lines checked", len(lines)), nil
	})
}

func hasPrefix(lines []herokusim.LogLine, p string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l.Message, p) {
			return true
		}
	}
	return false
}

// password is the password in a URL's user info, or "".
func password(s string) string {
	at := strings.LastIndex(s, "@")
	scheme := strings.Index(s, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return ""
	}
	user := s[scheme+3 : at]
	if _, pw, ok := strings.Cut(user, ":"); ok {
		return pw
	}
	return ""
}

// asyncDeprovision checks that Heroku was told, once the add-on is gone.
func (r *runner) asyncDeprovision(ctx context.Context, id string) {
	if !r.o.AsyncDeprovision {
		return
	}
	r.check(CheckAsyncDeprovision, func() (string, error) {
		a, err := r.o.Sim.Addon(ctx, id)
		if err != nil {
			return "", err
		}
		if a.State != "deprovisioned" {
			return "", fmt.Errorf("Heroku sees the add-on %s; want deprovisioned (POST /addons/{id}/actions/deprovision)", a.State)
		}
		return "deprovisioned on Heroku", nil
	})
}

// afterProvision is every check that needs a provisioned add-on, the
// optional ones included when they are on, so a failed provision skips
// them visibly.
func (r *runner) afterProvision() []string {
	out := append([]string(nil), afterProvision[:len(afterProvision)-3]...)
	if r.o.Webhooks {
		out = append(out, CheckWebhookSubscribed, CheckWebhookSigned, CheckWebhookBadSig, CheckWebhookRepeat)
	}
	if r.o.LogStream {
		out = append(out, CheckLogStream, CheckLogNoSecrets)
	}
	out = append(out, afterProvision[len(afterProvision)-3:]...)
	if r.o.AsyncDeprovision {
		out = append(out, CheckAsyncDeprovision)
	}
	return out
}
