package web

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kiln-dev/kiln/internal/addon"
)

// accessRefused reports kiln_addons_access_refused: live add-ons whose
// OAuth token Heroku refused at the last sync (authorization revoked).
// Kiln destroys nothing for it, so an operator must look: alert on > 0.
type accessRefused struct {
	keeper *addon.Keeper
	log    *slog.Logger
}

var descAccessRefused = prometheus.NewDesc("kiln_addons_access_refused",
	"Live add-ons whose OAuth token Heroku refused at the last sync (the customer or Heroku revoked the authorization); nothing is destroyed for it, an operator should look.",
	nil, nil)

func (c *accessRefused) Describe(ch chan<- *prometheus.Desc) { ch <- descAccessRefused }

func (c *accessRefused) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), censusTimeout)
	defer cancel()
	n, err := c.keeper.CountAccessRefused(ctx)
	if err != nil {
		c.log.Warn("metrics: counting refused tokens failed", "err", err)
		ch <- prometheus.NewInvalidMetric(descAccessRefused, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(descAccessRefused, prometheus.GaugeValue, float64(n))
}
