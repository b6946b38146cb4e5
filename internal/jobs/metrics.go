package jobs

import (
	"log/slog"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
)

// QueueMetrics is a Prometheus collector over asynq's queue statistics,
// read from Redis at scrape time, so operators can alert on a grant queue
// that backs up (grants die five minutes after Heroku's request) or on
// archived tasks. The metric names are those of asynq's own exporter
// (github.com/hibiken/asynq/x/metrics), whose published module is too old
// for asynq v0.26, so dashboards built for it work unchanged; asynq_up says
// whether Redis answered the scrape.
type QueueMetrics struct {
	in  *asynq.Inspector
	log *slog.Logger
}

var _ prometheus.Collector = (*QueueMetrics)(nil)

var (
	descUp = prometheus.NewDesc("asynq_up",
		"Whether Redis answered the last scrape of the queue statistics (1) or not (0).", nil, nil)
	descTasks = prometheus.NewDesc("asynq_tasks_enqueued_total",
		"Number of tasks in a queue, by state.", []string{"queue", "state"}, nil)
	descSize = prometheus.NewDesc("asynq_queue_size",
		"Number of tasks in a queue, all states but completed.", []string{"queue"}, nil)
	descLatency = prometheus.NewDesc("asynq_queue_latency_seconds",
		"Age of the oldest pending task of a queue.", []string{"queue"}, nil)
	descMemory = prometheus.NewDesc("asynq_queue_memory_usage_approx_bytes",
		"Approximate memory a queue and its tasks use in Redis.", []string{"queue"}, nil)
	descProcessed = prometheus.NewDesc("asynq_tasks_processed_total",
		"Tasks processed (succeeded or failed) since the queue was created.", []string{"queue"}, nil)
	descFailed = prometheus.NewDesc("asynq_tasks_failed_total",
		"Task attempts that failed since the queue was created.", []string{"queue"}, nil)
	descPaused = prometheus.NewDesc("asynq_queue_paused_total",
		"Whether a queue is paused (1) or not (0).", []string{"queue"}, nil)
)

// NewQueueMetrics returns the collector; it connects lazily. Close it with
// the process.
func NewQueueMetrics(r asynq.RedisConnOpt, log *slog.Logger) *QueueMetrics {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if s, ok := r.(SharedRedis); ok {
		return &QueueMetrics{in: asynq.NewInspectorFromRedisClient(s.Client), log: log}
	}
	return &QueueMetrics{in: asynq.NewInspector(r), log: log}
}

// Close releases the Redis connections (a SharedRedis client stays open).
func (m *QueueMetrics) Close() error { return m.in.Close() }

// Describe sends the descriptors of every metric Collect may send.
func (m *QueueMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descTasks, descSize, descLatency, descMemory, descProcessed, descFailed, descPaused} {
		ch <- d
	}
}

// Collect reads every queue's statistics. When Redis does not answer, only
// asynq_up (0) is sent, so the scrape itself still succeeds and the outage
// is what the operator sees.
func (m *QueueMetrics) Collect(ch chan<- prometheus.Metric) {
	queues, err := m.in.Queues()
	if err != nil {
		m.log.Warn("queue metrics: list queues", "err", err)
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
		return
	}
	up := 1.0
	for _, q := range queues {
		info, err := m.in.GetQueueInfo(q)
		if err != nil {
			m.log.Warn("queue metrics: read queue", "queue", q, "err", err)
			up = 0
			continue
		}
		gauge := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
		}
		for state, n := range map[string]int{
			"pending":     info.Pending,
			"active":      info.Active,
			"scheduled":   info.Scheduled,
			"retry":       info.Retry,
			"archived":    info.Archived,
			"completed":   info.Completed,
			"aggregating": info.Aggregating,
		} {
			gauge(descTasks, float64(n), q, state)
		}
		gauge(descSize, float64(info.Size), q)
		gauge(descLatency, info.Latency.Seconds(), q)
		gauge(descMemory, float64(info.MemoryUsage), q)
		ch <- prometheus.MustNewConstMetric(descProcessed, prometheus.CounterValue, float64(info.ProcessedTotal), q)
		ch <- prometheus.MustNewConstMetric(descFailed, prometheus.CounterValue, float64(info.FailedTotal), q)
		paused := 0.0
		if info.Paused {
			paused = 1
		}
		gauge(descPaused, paused, q)
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up)
}
