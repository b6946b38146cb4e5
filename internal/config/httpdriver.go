package config

import (
	"net/url"
	"time"

	httpdriver "github.com/kiln-dev/kiln/internal/drivers/http"
)

// minHTTPSecretLen is the shortest RESOURCE_HTTP_SECRET accepted: the key
// signs every request to the partner's service, so it must not be
// guessable (openssl rand -hex 32 makes a good one).
const minHTTPSecretLen = 32

// loadHTTPDriver reads the http driver's variables; the URL and the secret
// are required only when RESOURCE_DRIVER=http.
func loadHTTPDriver(c *Config, get func(string, bool) string, bad func(string, string)) {
	need := c.ResourceDriver == httpdriver.Name
	c.HTTPURL = get("RESOURCE_HTTP_URL", need)
	if c.HTTPURL != "" {
		u, err := url.Parse(c.HTTPURL)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			bad("RESOURCE_HTTP_URL", "want the partner service's base URL, such as https://svc.example.com/kiln")
		case u.User != nil || u.RawQuery != "" || u.Fragment != "":
			bad("RESOURCE_HTTP_URL", "must have no credentials, query or fragment (requests are signed with RESOURCE_HTTP_SECRET)")
		}
	}
	c.HTTPSecret = get("RESOURCE_HTTP_SECRET", need)
	if c.HTTPSecret != "" && len(c.HTTPSecret) < minHTTPSecretLen {
		bad("RESOURCE_HTTP_SECRET", "must be at least 32 characters (make one with: openssl rand -hex 32)")
	}
	c.HTTPTimeout = duration(get("RESOURCE_HTTP_TIMEOUT", false), 10*time.Second, "RESOURCE_HTTP_TIMEOUT", bad)
}
