package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// call is one prepared provision request: its add-on id and its body, built
// before the clock starts so the load generator spends its CPU on HTTP only.
type call struct {
	id   string
	body []byte
}

// grantLayout is the expires_at format of Heroku's provision requests.
const grantLayout = "2006-01-02T15:04:05-0700"

// provisionBody is Heroku's provision request, with the fields Heroku sends
// (the log drain fields too: Kiln seals them, and the worker writes the
// add-on's milestones to logURL).
func provisionBody(id, code string, expires time.Time, logURL string) []byte {
	b, _ := json.Marshal(map[string]any{
		"uuid":         id,
		"name":         "acme-inc-primary-" + id[:8],
		"plan":         "test",
		"region":       "amazon-web-services::us-east-1",
		"callback_url": "https://api.heroku.com/addons/" + id,
		"options":      map[string]string{},
		"oauth_grant": map[string]string{
			"code":       code,
			"expires_at": expires.Format(grantLayout),
			"type":       "authorization_code",
		},
		"log_input_url":   logURL,
		"log_drain_token": "d.01234567-89ab-cdef-0123-456789abcdef",
	})
	return b
}

// noLogURL is the log_input_url of add-ons no worker ever handles: a closed
// loopback port, so even a stray write never leaves the machine.
const noLogURL = "http://token:t.01234567-89ab-cdef-0123-456789abcdef@127.0.0.1:1/logs"

// unregistered prepares n provision calls whose grants the simulator does
// not know: for phases where no worker runs, so no grant is ever exchanged.
func unregistered(n int) []call {
	out := make([]call, n)
	exp := time.Now().Add(5 * time.Minute)
	for i := range out {
		id := uuid.NewString()
		out[i] = call{id: id, body: provisionBody(id, uuid.NewString(), exp, noLogURL)}
	}
	return out
}

// registered prepares n provision calls for add-ons registered with the
// simulator, whose grants the worker can exchange.
func (st *stack) registered(n int) []call {
	out := make([]call, n)
	for i := range out {
		id := uuid.NewString()
		g := st.sim.NewAddon(id)
		// The simulator's logplex endpoint, as Heroku hands out its own.
		out[i] = call{id: id, body: provisionBody(id, g.Code, g.ExpiresAt, st.sim.LogInputURL(st.simURL, id))}
	}
	return out
}

// loadResult is what one closed-loop run measured.
type loadResult struct {
	start, end time.Time
	starts     []time.Time     // when each request was sent
	latency    []time.Duration // request sent to answer read
	status     []int           // 0: transport error
}

// newLoadResult is a loadResult for n calls, none made yet.
func newLoadResult(n int) loadResult {
	return loadResult{
		starts:  make([]time.Time, n),
		latency: make([]time.Duration, n),
		status:  make([]int, n),
	}
}

// client makes an HTTP client with one keep-alive connection per caller,
// as Heroku's provisioning fan-in reuses its connections.
func client(callers int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        callers,
			MaxIdleConnsPerHost: callers,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
	}
}

// basicAuth is the Authorization header Heroku sends.
var basicAuth = "Basic " + base64.StdEncoding.EncodeToString([]byte(addonID+":"+password))

// runLoad sends every call to url from `callers` goroutines, each sending
// its next request as soon as the previous one is answered (a closed loop,
// like Heroku's provisioning fan-in), and times each request.
func runLoad(ctx context.Context, hc *http.Client, url string, calls []call, callers int) loadResult {
	r := newLoadResult(len(calls))
	var next atomic.Int64
	var wg sync.WaitGroup
	r.start = time.Now()
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(calls) || ctx.Err() != nil {
					return
				}
				r.send(ctx, hc, url, calls, i, time.Time{})
			}
		}()
	}
	wg.Wait()
	r.end = time.Now()
	return r
}

// send makes call i as Heroku would and records its start, latency and
// status in r. A paced call is timed from its tick (due), not from when a
// free caller got to it, so a sender that fell behind does not hide the
// wait (coordinated omission); zero due means now.
func (r *loadResult) send(ctx context.Context, hc *http.Client, url string, calls []call, i int, due time.Time) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(calls[i].body))
	if err != nil {
		return
	}
	req.Header.Set("Authorization", basicAuth)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/vnd.heroku-addons+json; version=3")
	t0 := time.Now()
	if !due.IsZero() && due.Before(t0) {
		t0 = due
	}
	resp, err := hc.Do(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		r.status[i] = resp.StatusCode
	}
	r.starts[i] = t0
	r.latency[i] = time.Since(t0)
}

// runPaced sends every call to url at a steady rate per second (an open
// loop: each call starts on its tick whatever the answers before it), as
// customers' add-ons arrive between bursts, with at most callers in
// flight.
func runPaced(ctx context.Context, hc *http.Client, url string, calls []call, rate float64, callers int) loadResult {
	r := newLoadResult(len(calls))
	slots := make(chan struct{}, callers)
	var wg sync.WaitGroup
	r.start = time.Now()
	for i := range calls {
		at := r.start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(at)):
		}
		if ctx.Err() != nil {
			break
		}
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			r.send(ctx, hc, url, calls, i, at)
		}()
	}
	wg.Wait()
	r.end = time.Now()
	return r
}

// Rate is a throughput run as the results report it.
type Rate struct {
	Requests  int            `json:"requests"`
	Errors    int            `json:"errors"` // answers other than 202, and transport errors
	Statuses  map[string]int `json:"statuses"`
	Seconds   float64        `json:"seconds"`
	PerSecond float64        `json:"per_second"`
	Latency   Latency        `json:"latency_ms"`
	CPU       CPU            `json:"cpu"`
	Sessions  int64          `json:"postgres_connections_opened"`
	latencies []time.Duration
}

// Latency is a latency distribution in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
	N   int     `json:"n"`
}

func (r loadResult) rate() Rate {
	out := Rate{Requests: len(r.status), Statuses: map[string]int{}}
	for _, s := range r.status {
		key := strconv.Itoa(s)
		if s == 0 {
			key = "error"
		}
		out.Statuses[key]++
		if s != http.StatusAccepted {
			out.Errors++
		}
	}
	d := r.end.Sub(r.start)
	out.Seconds = d.Seconds()
	if d > 0 {
		out.PerSecond = float64(len(r.status)) / d.Seconds()
	}
	out.latencies = r.latency
	out.Latency = latencyOf(r.latency)
	return out
}

// latencyOf summarises durations by nearest-rank percentiles.
func latencyOf(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(p float64) float64 {
		i := int(p*float64(len(s))+0.5) - 1
		i = max(0, min(i, len(s)-1))
		return ms(s[i])
	}
	return Latency{P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: ms(s[len(s)-1]), N: len(s)}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// answers is how the requests of a burst were answered by a later call the
// simulator saw for each add-on (its provision marked provisioned, its
// grant exchanged): every phase measures its burst the same way.
type answers struct {
	n       int       // how many were answered
	latency Latency   // from each request to its answer
	last    time.Time // the last answer
}

// answersOf pairs each answer time (zero: none yet) with the time its
// request was sent.
func answersOf(at, sent []time.Time) answers {
	var a answers
	var lat []time.Duration
	for i, t := range at {
		if t.IsZero() {
			continue
		}
		a.n++
		lat = append(lat, t.Sub(sent[i]))
		if t.After(a.last) {
			a.last = t
		}
	}
	a.latency = latencyOf(lat)
	return a
}

// rate is how long the burst took from start (its first request) to the
// last answer, and the answers per second over that time; zero when
// nothing was answered.
func (a answers) rate(start time.Time) (seconds, perSecond float64) {
	if a.n == 0 {
		return 0, 0
	}
	seconds = a.last.Sub(start).Seconds()
	return seconds, float64(a.n) / seconds
}
