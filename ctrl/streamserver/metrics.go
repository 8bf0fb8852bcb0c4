package streamserver

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/ctrl/metrics"
)

// serverMetrics are the collectors the hot paths use, resolved once: a
// label lookup per message would take the vectors' locks thousands of
// times per change.
type serverMetrics struct {
	*metrics.Metrics
	queueDepth                     prometheus.Gauge
	overflows                      prometheus.Counter
	ackByCode                      map[meshpb.AckCode]prometheus.Counter
	ackUnknown                     prometheus.Counter
	sync, delta, rotation          prometheus.Counter
	syncLat, deltaLat, rotationLat prometheus.Observer
}

func newServerMetrics(m *metrics.Metrics) *serverMetrics {
	sm := &serverMetrics{
		Metrics: m, queueDepth: m.QueueDepth, overflows: m.QueueOverflows,
		ackByCode:  map[meshpb.AckCode]prometheus.Counter{},
		ackUnknown: m.Acks.WithLabelValues("unknown"),
		sync:       m.Commands.WithLabelValues("sync"), delta: m.Commands.WithLabelValues("delta"),
		rotation: m.Commands.WithLabelValues("rotation"),
		syncLat:  m.PushLatency.WithLabelValues("sync"), deltaLat: m.PushLatency.WithLabelValues("delta"),
		rotationLat: m.PushLatency.WithLabelValues("rotation"),
	}
	for code, label := range map[meshpb.AckCode]string{
		meshpb.AckCode_ACK_OK: "ok", meshpb.AckCode_ACK_INVALID: "invalid", meshpb.AckCode_ACK_STALE: "stale",
		meshpb.AckCode_ACK_GAP: "gap", meshpb.AckCode_ACK_CAPACITY: "capacity", meshpb.AckCode_ACK_FAILED: "failed",
	} {
		sm.ackByCode[code] = m.Acks.WithLabelValues(label)
	}
	return sm
}

func (m *serverMetrics) acks(code meshpb.AckCode) prometheus.Counter {
	if c, ok := m.ackByCode[code]; ok {
		return c
	}
	return m.ackUnknown
}

func (m *serverMetrics) commands(kind string) prometheus.Counter {
	switch kind {
	case "sync":
		return m.sync
	case "rotation":
		return m.rotation
	}
	return m.delta
}

func (m *serverMetrics) latency(kind string) prometheus.Observer {
	switch kind {
	case "sync":
		return m.syncLat
	case "rotation":
		return m.rotationLat
	}
	return m.deltaLat
}

func (m *serverMetrics) resyncs(reason string) prometheus.Counter {
	return m.Resyncs.WithLabelValues(reason)
}
