package stream

import (
	"context"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/pods-dev/pods/db"
)

// metrics are a hub's Prometheus metrics. Their methods are safe for
// concurrent use.
type metrics struct {
	open              prometheus.Gauge
	logged, ephemeral prometheus.Counter
	latency           prometheus.Histogram
	slow              prometheus.Counter
	logReads          prometheus.Counter
	// reconnects of the LISTEN and the replication connection.
	listenReconnects, walReconnects prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, h *Hub) *metrics {
	f := promauto.With(reg)
	fannedOut := f.NewCounterVec(prometheus.CounterOpts{
		Name: "pods_stream_events_fanned_out_total",
		Help: "Events the hub queued to Subscribe streams, counted once per stream; kind is logged (from the event log) or ephemeral (presence, typing, read).",
	}, []string{"kind"})
	reconnects := f.NewCounterVec(prometheus.CounterOpts{
		Name: "pods_stream_reconnects_total",
		Help: "Times the hub's connection for the change source (listen: LISTEN; wal: logical replication) was lost or could not be opened, and was tried again.",
	}, []string{"connection"})
	reg.MustRegister(dbCollector{hub: h})
	return &metrics{
		listenReconnects: reconnects.WithLabelValues("listen"),
		walReconnects:    reconnects.WithLabelValues("wal"),
		open: f.NewGauge(prometheus.GaugeOpts{
			Name: "pods_stream_open_streams",
			Help: "Subscribe streams open on this node.",
		}),
		logged:    fannedOut.WithLabelValues("logged"),
		ephemeral: fannedOut.WithLabelValues("ephemeral"),
		// Measured from when the hub learned, on one clock: the events'
		// created_at is the writing transaction's start on the database's
		// clock, which would add the transaction's length and clock skew.
		latency: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "pods_stream_fanout_latency_seconds",
			Help:    "Seconds from the hub learning that a pod has new events (a NOTIFY, or a commit on the replication stream) to the events being queued to the pod's streams, per logged event. It leaves out the commit before and the client's reading after, and the events a node committed itself and fanned out at once.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16), // 100 µs to 3.3 s
		}),
		slow: f.NewCounter(prometheus.CounterOpts{
			Name: "pods_stream_slow_consumers_total",
			Help: "Subscribe streams cut off with resource_exhausted because their queue was full.",
		}),
		logReads: f.NewCounter(prometheus.CounterOpts{
			Name: "pods_stream_log_reads_total",
			Help: "Reads of the event log for new events of the pods this node streams (each read covers every pod that may have new ones).",
		}),
	}
}

// scrapeTimeout bounds each database read of a scrape.
const scrapeTimeout = 2 * time.Second

var (
	queueUsageDesc = prometheus.NewDesc("pods_stream_notification_queue_usage",
		"Fraction of the database's NOTIFY queue in use (pg_notification_queue_usage()), read at scrape time; at 1 every NOTIFY fails.", nil, nil)
	walLagDesc = prometheus.NewDesc("pods_stream_wal_lag_bytes",
		"Bytes of WAL the database has written past the position this node's replication reader has handled, read at scrape time; only with the wal change source while it is connected.", nil, nil)
)

// dbCollector reads the database's side of the hub at scrape time. A read
// that fails is logged and its metric left out of the scrape.
type dbCollector struct {
	hub *Hub
}

func (c dbCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueUsageDesc
	ch <- walLagDesc
}

func (c dbCollector) Collect(ch chan<- prometheus.Metric) {
	h := c.hub
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	if usage, err := db.NotificationQueueUsage(ctx, h.cfg.Pool); err != nil {
		h.log.Warn("stream: metrics: reading notification queue usage", "err", err)
	} else {
		ch <- prometheus.MustNewConstMetric(queueUsageDesc, prometheus.GaugeValue, usage)
	}
	pos := h.walPosition.Load()
	if pos == 0 {
		return
	}
	if lag, err := db.WALBytesAfter(ctx, h.cfg.Pool, pglogrepl.LSN(pos).String()); err != nil {
		h.log.Warn("stream: metrics: reading the WAL position", "err", err)
	} else {
		ch <- prometheus.MustNewConstMetric(walLagDesc, prometheus.GaugeValue, lag)
	}
}
