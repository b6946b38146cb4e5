package asheroku

import (
	"context"
	"crypto/sha1" //nolint:gosec // Heroku's resource_token is defined as SHA-1; we must produce it, not choose it.
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// NavDataCookie is the cookie a provider must set from the posted nav-data
// field after a good sign-in.
const NavDataCookie = "heroku-nav-data"

// ResourceToken is Heroku's resource_token: hex(sha1(id:salt:timestamp)).
func ResourceToken(id, salt string, timestamp int64) string {
	sum := sha1.Sum([]byte(id + ":" + salt + ":" + strconv.FormatInt(timestamp, 10))) //nolint:gosec // see import
	return hex.EncodeToString(sum[:])
}

// UserScopedToken is Heroku's user_scoped_resource_token:
// hex(sha256(id:salt:timestamp:user_id:email)).
func UserScopedToken(id, salt string, timestamp int64, userID, email string) string {
	sum := sha256.Sum256([]byte(id + ":" + salt + ":" + strconv.FormatInt(timestamp, 10) + ":" + userID + ":" + email))
	return hex.EncodeToString(sum[:])
}

// SSO is one single sign-on as Heroku's dashboard performs it for a user
// opening the add-on.
type SSO struct {
	ResourceID string
	Salt       string // the manifest's api.sso_salt
	Timestamp  time.Time
	UserID     string
	Email      string
	App        string
	ContextApp string
	NavData    string
}

// NewSSO fills an SSO for the add-on with a plausible user and app, signed
// now.
func NewSSO(resourceID, salt string) SSO {
	return SSO{
		ResourceID: resourceID,
		Salt:       salt,
		Timestamp:  time.Now(),
		UserID:     "2a5e5b0c-1f4e-4c7a-9d6e-000000000001",
		Email:      "developer@example.com",
		App:        "kiln-heroku-app",
		ContextApp: "kiln-heroku-app",
		NavData:    NavData("kiln-heroku-app", resourceID),
	}
}

// NavData builds a nav-data value shaped like Heroku's (base64 of a small
// JSON document), so a provider's cookie handling sees realistic bytes,
// "=" padding included.
func NavData(app, addon string) string {
	b, _ := json.Marshal(map[string]any{"appname": app, "addon": addon, "addons": []string{addon}})
	return base64.URLEncoding.EncodeToString(b)
}

// Form is the form Heroku's dashboard posts to the sso_url, legacy fields
// (id, token) included.
func (s SSO) Form() url.Values {
	ts := s.Timestamp.Unix()
	tok := ResourceToken(s.ResourceID, s.Salt, ts)
	return url.Values{
		"resource_id":                {s.ResourceID},
		"resource_token":             {tok},
		"user_scoped_resource_token": {UserScopedToken(s.ResourceID, s.Salt, ts, s.UserID, s.Email)},
		"timestamp":                  {strconv.FormatInt(ts, 10)},
		"nav-data":                   {s.NavData},
		"email":                      {s.Email},
		"user_id":                    {s.UserID},
		"app":                        {s.App},
		"context_app":                {s.ContextApp},
		"id":                         {s.ResourceID},
		"token":                      {tok},
	}
}

var pageTemplate = template.Must(template.New("sso").Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Signing in to Kiln as Heroku would</title></head>
<body onload="document.forms[0].submit()">
<p>Signing in to {{.Action}} as Heroku's dashboard would&hellip;</p>
<form method="post" action="{{.Action}}">
{{- range .Fields}}
<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{- end}}
<noscript><button type="submit">Sign in</button></noscript>
</form>
</body>
</html>
`))

// Page renders a tiny HTML page whose form posts the SSO fields to action
// as soon as it loads: SSO is a browser POST, so a link cannot do it.
func Page(action string, form url.Values) ([]byte, error) {
	type field struct{ Name, Value string }
	var fields []field
	for _, k := range sortedKeys(form) {
		for _, v := range form[k] {
			fields = append(fields, field{k, v})
		}
	}
	var b strings.Builder
	if err := pageTemplate.Execute(&b, struct {
		Action string
		Fields []field
	}{action, fields}); err != nil {
		return nil, fmt.Errorf("render SSO page: %w", err)
	}
	return []byte(b.String()), nil
}

// SignIn is what a browser saw when it posted an SSO form: the first answer
// and, when that was a redirect, the answers along the redirect chain.
type SignIn struct {
	First   *Answer
	Final   *Answer
	Hops    []string     // the Location of each redirect followed
	NavData *http.Cookie // the heroku-nav-data cookie set along the way, nil if none
}

// SignIn posts the SSO form to Kiln's sso_url as a browser would, following
// up to five redirects with the cookies set along the way.
func (k *Kiln) SignIn(ctx context.Context, form url.Values) (*SignIn, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, fmt.Errorf("cookie jar: %w", err)
	}
	base := k.client()
	c := &http.Client{
		Transport:     base.Transport,
		Timeout:       base.Timeout,
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, k.URL+SSOPath, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("POST %s: %w", SSOPath, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	a, err := do(c, req)
	if err != nil {
		return nil, err
	}
	s := &SignIn{First: a, Final: a}
	s.NavData = navCookie(a, s.NavData)
	for hop := 0; hop < 5 && a.Status >= 300 && a.Status < 400; hop++ {
		loc, err := req.URL.Parse(a.Header.Get("Location"))
		if err != nil || a.Header.Get("Location") == "" {
			return s, fmt.Errorf("redirect %d without a usable Location header", a.Status)
		}
		s.Hops = append(s.Hops, loc.String())
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
		if err != nil {
			return s, fmt.Errorf("follow redirect: %w", err)
		}
		req.Header.Set("Accept", "text/html")
		if a, err = do(c, req); err != nil {
			return s, err
		}
		s.Final = a
		s.NavData = navCookie(a, s.NavData)
	}
	return s, nil
}

// navCookie returns the heroku-nav-data cookie an answer sets, or prev.
func navCookie(a *Answer, prev *http.Cookie) *http.Cookie {
	resp := http.Response{Header: a.Header}
	for _, c := range resp.Cookies() {
		if c.Name == NavDataCookie {
			return c
		}
	}
	return prev
}
