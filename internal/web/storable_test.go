package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/kiln-dev/kiln/internal/addon"
)

// TestUnstorableInputIsRefused: a NUL byte or bytes that are not UTF-8, in
// any field of any endpoint's input, is a 422 whose message names the
// field, and nothing is recorded; never the 500 Postgres's refusal used to
// become.
func TestUnstorableInputIsRefused(t *testing.T) {
	t.Parallel()
	env := newEnv(t, envConfig{})
	for _, tt := range []struct {
		name  string
		edit  func(body string) string
		field string
	}{
		{"NUL in an option value", func(b string) string { return strings.Replace(b, `"foo": "bar"`, `"foo": "b\u0000ar"`, 1) }, "options.foo"},
		{"NUL in an option key", func(b string) string { return strings.Replace(b, `"foo": "bar"`, `"f\u0000oo": "bar"`, 1) }, "key of the options field"},
		{"NUL in name", func(b string) string {
			return strings.Replace(b, `"acme-inc-primary-database"`, `"acme\u0000"`, 1)
		}, "name field"},
		{"NUL in region", func(b string) string {
			return strings.Replace(b, `"amazon-web-services::us-east-1"`, `"amazon\u0000"`, 1)
		}, "region field"},
		{"NUL in the grant code", func(b string) string { return strings.Replace(b, `"grant-code-`, `"gr\u0000ant-code-`, 1) }, "oauth_grant.code field"},
		{"invalid UTF-8 in name", func(b string) string {
			return strings.Replace(b, `"acme-inc-primary-database"`, "\"acme\xff\xfe\"", 1)
		}, "name field"},
		{"invalid UTF-8 in an option", func(b string) string { return strings.Replace(b, `"foo": "bar"`, "\"foo\": \"b\xc3\"", 1) }, "options.foo"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id := uuid.NewString()
			a := serve(t, env.e, heroku(http.MethodPost, "/heroku/resources", tt.edit(provisionBody(id))))
			if a.status != http.StatusUnprocessableEntity || a.ID != addon.EINVALID {
				t.Fatalf("status %d, body %s; want 422 %q", a.status, a.raw, addon.EINVALID)
			}
			if !strings.Contains(a.Msg, tt.field) {
				t.Errorf("message %q does not name %q", a.Msg, tt.field)
			}
			if env.stored(t, id) != nil {
				t.Error("the add-on was recorded")
			}
		})
	}

	t.Run("plan change", func(t *testing.T) {
		id := uuid.NewString()
		if a := serve(t, env.e, heroku(http.MethodPost, "/heroku/resources", provisionBody(id))); a.status != http.StatusAccepted {
			t.Fatalf("provision: %d %s", a.status, a.raw)
		}
		a := serve(t, env.e, heroku(http.MethodPut, "/heroku/resources/"+id, `{"plan": "te\u0000st"}`))
		if a.status != http.StatusUnprocessableEntity || !strings.Contains(a.Msg, "plan field") {
			t.Errorf("status %d, body %s; want 422 naming plan", a.status, a.raw)
		}
	})
	t.Run("path", func(t *testing.T) {
		a := serve(t, env.e, heroku(http.MethodDelete, "/heroku/resources/"+url.PathEscape("abc\x00def"), ""))
		if a.status != http.StatusUnprocessableEntity || !strings.Contains(a.Msg, "uuid in the path") {
			t.Errorf("status %d, body %s; want 422 naming the uuid", a.status, a.raw)
		}
	})
	t.Run("query", func(t *testing.T) {
		r := heroku(http.MethodDelete, "/heroku/resources/"+uuid.NewString()+"?x="+url.QueryEscape("\xff"), "")
		a := serve(t, env.e, r)
		if a.status != http.StatusUnprocessableEntity || !strings.Contains(a.Msg, `query parameter "x"`) {
			t.Errorf("status %d, body %s; want 422 naming the parameter", a.status, a.raw)
		}
	})
	t.Run("long plan names are cut in the message", func(t *testing.T) {
		long := strings.Repeat("p", 5000)
		a := serve(t, env.e, heroku(http.MethodPost, "/heroku/resources", strings.Replace(provisionBody(uuid.NewString()), `"plan": "test"`, `"plan": "`+long+`"`, 1)))
		if a.status != http.StatusUnprocessableEntity {
			t.Fatalf("status %d", a.status)
		}
		if len(a.Msg) > 500 || !strings.Contains(a.Msg, "…") {
			t.Errorf("message is %d bytes, want the plan name cut: %.200s", len(a.Msg), a.Msg)
		}
	})
}

// TestUnstorableFormIsRefused: the SSO form, which the customer's browser
// posts, gets the same check.
func TestUnstorableFormIsRefused(t *testing.T) {
	t.Parallel()
	c := newCustomer(t, customerConfig{})
	form := url.Values{"resource_id": {uuid.NewString()}, "email": {"dev\x00@example.com"}}
	p := do(t, c.e, http.MethodPost, "/sso/login", form, nil)
	if p.status != http.StatusUnprocessableEntity || !strings.Contains(p.body, `form field &#34;email&#34;`) {
		t.Errorf("status %d, body %s; want 422 naming the email field", p.status, p.body)
	}
}
