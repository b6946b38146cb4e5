package web

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// homePage is what a person opening Kiln's root URL sees (make dev prints
// it first): what this is and where to go. It names nothing secret and
// nothing about the deployment (no add-on id, no plan, no versions).
const homePage = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Kiln</title>
<style>
body { font: 16px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem; color: #222; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
code { background: #f3f3f3; padding: 0 .2rem; }
li { margin: .3rem 0; }
</style>
</head>
<body>
<h1>Kiln</h1>
<p>This is Kiln, the service a Heroku add-on partner runs to answer Heroku's
Add-on Partner API and provision customers' resources. Heroku calls it under
<code>/heroku</code>; customers reach their add-on's dashboard by single sign-on
from Heroku.</p>
<ul>
<li><a href="/healthz">Health</a>: whether Kiln reaches its database and Redis.</li>
<li><a href="/admin/queues">Queues</a>: the job dashboard, for operators (user <code>admin</code>, the admin password).</li>
<li><a href="/admin/api/schema">Operator API</a> (<a href="` + OperatorDocsURL + `">documentation</a>) and <a href="/metrics">metrics</a>, for operators.</li>
<li><a href="https://github.com/kiln-dev/kiln#readme">Kiln's documentation</a>, and Heroku's
<a href="https://devcenter.heroku.com/articles/add-on-partner-api-reference">Add-on Partner API reference</a>.</li>
</ul>
</body>
</html>
`

// homePolicy lets the page load nothing at all from elsewhere.
const homePolicy = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// home handles GET / (and HEAD).
func (s *server) home(c echo.Context) error {
	h := c.Response().Header()
	h.Set("Content-Security-Policy", homePolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set(echo.HeaderCacheControl, "public, max-age=300")
	return c.HTML(http.StatusOK, homePage)
}
