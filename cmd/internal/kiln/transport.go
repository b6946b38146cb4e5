package kiln

import (
	"net/http"
	"time"

	"github.com/kiln-dev/kiln/internal/config"
)

// platformTimeout bounds one call to Heroku, as the heroku package's own
// default does.
const platformTimeout = 15 * time.Second

// platformIdleConns is how many idle keep-alive connections to Heroku a
// process keeps. Go's default is two per host, which a worker running
// fifteen jobs at once (WORKER_CONCURRENCY plus the grant server) outgrows at
// once: every other call then opened (and TLS-handshook) a new connection and
// left one in TIME_WAIT. The benchmark showed it; docs/performance.md has the
// figures. A worker now runs up to WORKER_CONCURRENCY + GRANT_CONCURRENCY
// (200 by default) calls at once, so it keeps that many.
const platformIdleConns = config.DefaultConcurrency + config.DefaultGrantConcurrency

// platformClient is the HTTP client for id.heroku.com and the Platform API.
func platformClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = platformIdleConns
	t.MaxIdleConnsPerHost = platformIdleConns
	return &http.Client{Timeout: platformTimeout, Transport: t}
}
