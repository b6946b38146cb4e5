package web

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kiln-dev/kiln/internal/addon"
)

// lostGrantsCollector reports kiln_grants_lost: add-ons that failed because
// Heroku refused their grant after an earlier exchange attempt had started
// (the answer was lost). Any value above zero is worth an alert.
type lostGrantsCollector struct {
	svc *addon.Service
	log *slog.Logger
}

var descGrantsLost = prometheus.NewDesc("kiln_grants_lost",
	"Add-ons failed because Heroku refused their grant after an earlier exchange attempt whose answer was lost.", nil, nil)

func (c *lostGrantsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descGrantsLost }

func (c *lostGrantsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), censusTimeout)
	defer cancel()
	n, err := c.svc.CountLostGrants(ctx)
	if err != nil {
		c.log.Warn("metrics: counting lost grants failed", "err", err)
		return
	}
	ch <- prometheus.MustNewConstMetric(descGrantsLost, prometheus.GaugeValue, float64(n))
}
