package web

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// This file is /metrics: Prometheus metrics of the web process (requests
// by route template, latencies), of the add-ons (how many in each state,
// read from the store at scrape time) and whatever collectors cmd/web adds
// (the job queues'). Each server has its own registry, never the global
// one, so tests can build many servers in one process.

// censusTimeout bounds the store query of a scrape.
const censusTimeout = 2 * time.Second

// metrics holds the web process's registry and request instruments.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec

	routesOnce sync.Once
	routes     map[string]bool // the registered route templates
}

func newMetrics(svc *addon.Service, extra []prometheus.Collector, log *slog.Logger) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_http_requests_total",
			Help: "HTTP requests answered, by method, route template and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kiln_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by method and route template.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 25},
		}, []string{"method", "route"}),
	}
	m.reg.MustRegister(m.requests, m.duration,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if svc != nil {
		m.reg.MustRegister(&censusCollector{svc: svc, log: log}, &lostGrantsCollector{svc: svc, log: log})
	}
	for _, c := range extra {
		if err := m.reg.Register(c); err != nil {
			log.Error("metrics: a collector could not be registered", "err", err)
		}
	}
	return m
}

// handler serves the registry in Prometheus' text format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// measure counts and times every request. The route label is the route
// template (/heroku/resources/:uuid), never the raw path, and requests that
// matched no route share one label, so no caller can grow the series.
func (m *metrics) measure(e *echo.Echo) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			status := c.Response().Status
			if status == 0 {
				status = http.StatusOK
			}
			method, route := methodLabel(c.Request().Method), m.route(e, c.Path())
			m.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
			m.duration.WithLabelValues(method, route).Observe(time.Since(start).Seconds())
			return nil
		}
	}
}

// route returns path when it is a registered route template, else
// "unmatched". The set is read once, after every route is registered.
func (m *metrics) route(e *echo.Echo, path string) string {
	m.routesOnce.Do(func() {
		m.routes = map[string]bool{}
		for _, r := range e.Routes() {
			m.routes[r.Path] = true
		}
	})
	if path != "" && m.routes[path] {
		return path
	}
	return "unmatched"
}

// methodLabel keeps the method label to the standard methods.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return method
	}
	return "OTHER"
}

// censusCollector reports kiln_addons{state}: how many add-ons are in each
// state, every state listed (zero included) so alerts on absent series are
// not needed. A failing store query leaves the metric out of that scrape
// (and is logged) rather than failing the whole scrape.
type censusCollector struct {
	svc *addon.Service
	log *slog.Logger
}

var descAddons = prometheus.NewDesc("kiln_addons",
	"Add-ons Kiln records, by state.", []string{"state"}, nil)

// allStates lists every state so each has a series.
var allStates = []addon.State{addon.StateProvisioning, addon.StateProvisioned, addon.StateFailed,
	addon.StateDeprovisioning, addon.StateDeprovisioned}

func (c *censusCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descAddons }

func (c *censusCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), censusTimeout)
	defer cancel()
	counts, err := c.svc.CountByState(ctx)
	if err != nil {
		c.log.Warn("metrics: counting add-ons by state failed", "err", err)
		return
	}
	for _, st := range allStates {
		ch <- prometheus.MustNewConstMetric(descAddons, prometheus.GaugeValue, float64(counts[st]), string(st))
	}
}
