package rpc

import (
	"context"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metricsInterceptor counts finished calls by procedure and Connect code,
// and times unary calls. It is the outermost interceptor, so it also counts
// calls that failed authentication.
type metricsInterceptor struct {
	handled  *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetricsInterceptor(reg prometheus.Registerer) *metricsInterceptor {
	return &metricsInterceptor{
		handled: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "pods_rpc_handled_total",
			Help: "Calls this node finished, by procedure and Connect code (ok for success); a stream counts when it ends.",
		}, []string{"procedure", "code"}),
		duration: promauto.With(reg).NewHistogramVec(prometheus.HistogramOpts{
			Name: "pods_rpc_duration_seconds",
			Help: "How long unary calls took in this node's interceptors and handler, by procedure (decoding the request and sending the answer left out).",
			// 0.25 ms to 4 s.
			Buckets: prometheus.ExponentialBuckets(0.00025, 2, 15),
		}, []string{"procedure"}),
	}
}

func (m *metricsInterceptor) count(procedure string, err error) {
	code := "ok"
	if err != nil {
		code = connect.CodeOf(err).String()
	}
	m.handled.WithLabelValues(procedure, code).Inc()
}

func (m *metricsInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		start := time.Now()
		res, err := next(ctx, req)
		m.duration.WithLabelValues(req.Spec().Procedure).Observe(time.Since(start).Seconds())
		m.count(req.Spec().Procedure, err)
		return res, err
	}
}

func (m *metricsInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (m *metricsInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		err := next(ctx, conn)
		m.count(conn.Spec().Procedure, err)
		return err
	}
}
