package jobs_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kiln-dev/kiln/internal/addon"
	"github.com/kiln-dev/kiln/internal/jobs"
)

func TestQueueMetrics(t *testing.T) {
	r := redisOpt(t)
	q := newQueue(t, r)
	ctx := context.Background()
	for range 2 {
		if err := q.Enqueue(ctx, addon.JobGrant, addon.ID(uuid.NewString())); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Enqueue(ctx, addon.JobProvision, addon.ID(uuid.NewString())); err != nil {
		t.Fatal(err)
	}

	m := jobs.NewQueueMetrics(r, nil)
	t.Cleanup(func() { m.Close() })
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)

	text := scrape(t, reg)
	for _, line := range []string{
		`asynq_queue_size{queue="grant"} 2`,
		`asynq_queue_size{queue="default"} 1`,
		`asynq_tasks_enqueued_total{queue="grant",state="pending"} 2`,
		`asynq_tasks_enqueued_total{queue="grant",state="archived"} 0`,
		`asynq_tasks_processed_total{queue="grant"} 0`,
		`asynq_queue_paused_total{queue="default"} 0`,
		`asynq_up 1`,
	} {
		if !hasLine(text, line) {
			t.Errorf("scrape has no line %q:\n%s", line, text)
		}
	}
}

func TestQueueMetricsRedisDown(t *testing.T) {
	m := jobs.NewQueueMetrics(asynq.RedisClientOpt{Addr: "127.0.0.1:1"}, nil)
	t.Cleanup(func() { m.Close() })
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	text := scrape(t, reg)
	if !hasLine(text, "asynq_up 0") {
		t.Errorf("scrape with Redis down has no line \"asynq_up 0\":\n%s", text)
	}
	if strings.Contains(text, "asynq_queue_size") {
		t.Errorf("scrape with Redis down reports queue sizes:\n%s", text)
	}
}

// scrape renders the registry as Prometheus would read it; the pedantic
// registry fails the scrape on inconsistent metrics.
func scrape(tb testing.TB, reg *prometheus.Registry) string {
	tb.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}).
		ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		tb.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

func hasLine(text, line string) bool {
	for _, l := range strings.Split(text, "\n") {
		if l == line {
			return true
		}
	}
	return false
}
