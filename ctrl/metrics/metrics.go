package metrics

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

const namespace = "vpblu_controller"

// Metrics are the controller's collectors.
type Metrics struct {
	// ConnectedDaemons counts daemons holding an authenticated stream.
	ConnectedDaemons prometheus.Gauge
	// PushLatency is the time from a command being queued for a daemon to
	// the daemon's ack, by kind (sync, delta).
	PushLatency *prometheus.HistogramVec
	// QueueDepth counts commands queued for all daemons and not yet sent.
	QueueDepth prometheus.Gauge
	// QueueOverflows counts queues that overflowed and collapsed into one
	// later SyncState.
	QueueOverflows prometheus.Counter
	// Resyncs counts full SyncStates sent, by reason (connect, periodic,
	// overflow, ack_gap, ack_stale, ack_error).
	Resyncs *prometheus.CounterVec
	// Commands counts commands sent, by kind (sync, delta).
	Commands *prometheus.CounterVec
	// Acks counts daemon acks by code (ok, invalid, stale, gap, capacity,
	// failed).
	Acks *prometheus.CounterVec
	// AuthRefusals counts refused streams by reason (see auth.Reason, plus
	// not_leader is not a refusal and is not counted here).
	AuthRefusals *prometheus.CounterVec
	// Leader is 1 while this replica leads.
	Leader prometheus.Gauge
	// LeaderEpoch is the generation epoch of this replica's leadership.
	LeaderEpoch prometheus.Gauge
	// Generation is the seq of the current generation.
	GenerationSeq prometheus.Gauge
	// Recomputes counts desired-state recomputations, by result.
	Recomputes *prometheus.CounterVec
	// StatusWrites counts VpbluNode and policy status writes, by result.
	StatusWrites *prometheus.CounterVec
	// RotationStage is 1 for the stage the rotation of a node is in (see
	// ctrl/rotation.Stage), by node and stage; a node's series go when its
	// rotation ends.
	RotationStage *prometheus.GaugeVec
	// Rotations counts key rotations that ended, by outcome (completed,
	// rolled_back).
	Rotations *prometheus.CounterVec
	// RotationDuration is how long key rotations took, by outcome.
	RotationDuration *prometheus.HistogramVec
}

// RotationOutcomes are the outcomes Rotations and RotationDuration are
// initialised with.
var RotationOutcomes = []string{"completed", "rolled_back"}

// RefusalReasons are the reasons AuthRefusals is initialised with.
var RefusalReasons = []string{"no_token", "expired", "audience", "rejected", "service_account", "not_bound", "node_mismatch", "review", "bad_hello", "other"}

// New creates the collectors and registers them on reg.
func New(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		ConnectedDaemons: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "connected_daemons",
			Help: "Daemons holding an authenticated stream to this controller.",
		}),
		PushLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "push_latency_seconds",
			Help:    "Time from a command being queued for a daemon to the daemon's ack.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"kind"}),
		QueueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "send_queue_depth",
			Help: "Commands queued for all daemons and not yet sent.",
		}),
		QueueOverflows: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "send_queue_overflows_total",
			Help: "Per-daemon queues that overflowed and collapsed into one SyncState.",
		}),
		Resyncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "resyncs_total",
			Help: "Full SyncStates sent to daemons, by reason.",
		}, []string{"reason"}),
		Commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "commands_total",
			Help: "Commands sent to daemons, by kind.",
		}, []string{"kind"}),
		Acks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "acks_total",
			Help: "Acks received from daemons, by code.",
		}, []string{"code"}),
		AuthRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "auth_refusals_total",
			Help: "Daemon streams refused, by reason.",
		}, []string{"reason"}),
		Leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "leader",
			Help: "1 while this replica is the leader serving daemon streams.",
		}),
		LeaderEpoch: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "leader_epoch",
			Help: "Generation epoch of this replica's leadership.",
		}),
		GenerationSeq: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "generation_seq",
			Help: "Sequence number of the current desired-state generation.",
		}),
		Recomputes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "recomputes_total",
			Help: "Desired-state recomputations, by result.",
		}, []string{"result"}),
		StatusWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "status_writes_total",
			Help: "Status writes to the API server, by result.",
		}, []string{"result"}),
		RotationStage: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "rotation_stage",
			Help: "1 for the stage of the key rotation in progress, by node and stage.",
		}, []string{"node", "stage"}),
		Rotations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "rotations_total",
			Help: "Key rotations that ended, by outcome.",
		}, []string{"outcome"}),
		RotationDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "rotation_duration_seconds",
			Help:    "Duration of key rotations, from start to completion or the end of the rollback, by outcome.",
			Buckets: prometheus.ExponentialBuckets(0.5, 2, 10),
		}, []string{"outcome"}),
	}
	for _, r := range RefusalReasons {
		m.AuthRefusals.WithLabelValues(r)
	}
	for _, o := range RotationOutcomes {
		m.Rotations.WithLabelValues(o)
		m.RotationDuration.WithLabelValues(o)
	}
	for _, c := range []prometheus.Collector{
		m.ConnectedDaemons, m.PushLatency, m.QueueDepth, m.QueueOverflows, m.Resyncs,
		m.Commands, m.Acks, m.AuthRefusals, m.Leader, m.LeaderEpoch, m.GenerationSeq,
		m.Recomputes, m.StatusWrites, m.RotationStage, m.Rotations, m.RotationDuration,
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metric: %w", err)
		}
	}
	return m, nil
}

// NewUnregistered returns collectors registered on a private registry, for
// tests and tools that do not serve them.
func NewUnregistered() *Metrics {
	m, err := New(prometheus.NewRegistry())
	if err != nil {
		// A fresh registry cannot hold a duplicate.
		panic(err)
	}
	return m
}
