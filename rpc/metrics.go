package rpc

import (
	"context"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metricsInterceptor counts finished calls by procedure and Connect code.
// It is the outermost interceptor, so it also counts calls that failed
// authentication.
type metricsInterceptor struct {
	handled *prometheus.CounterVec
}

func newMetricsInterceptor(reg prometheus.Registerer) *metricsInterceptor {
	return &metricsInterceptor{handled: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "pods_rpc_handled_total",
		Help: "Calls this node finished, by procedure and Connect code (ok for success); a stream counts when it ends.",
	}, []string{"procedure", "code"})}
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
		res, err := next(ctx, req)
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
