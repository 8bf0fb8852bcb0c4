package manager

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"

	"github.com/lumbrjx/vpblu/ctrl/rotation"
)

// Options configure a controller process.
type Options struct {
	// Config reaches the API server.
	Config *rest.Config
	// Namespace holds the Lease, the CA Secret and its ConfigMap.
	Namespace string

	// LeaderElection turns on the Lease (off: this process always leads;
	// for a single replica only).
	LeaderElection   bool
	LeaderElectionID string
	LeaseDuration    time.Duration
	RenewDeadline    time.Duration
	RetryPeriod      time.Duration

	// StreamAddr is where daemons connect (gRPC over TLS); Listener, when
	// set, is used instead.
	StreamAddr string
	Listener   net.Listener
	// TLSDNSNames and TLSIPs are the serving certificate's SANs.
	TLSDNSNames []string
	TLSIPs      []net.IP
	// CASecret and CAConfigMap name the CA Secret and the bundle ConfigMap
	// (default vpblu-ca).
	CASecret    string
	CAConfigMap string

	// AgentAudience is the token audience daemons use (default
	// vpblu.io/agent); AgentServiceAccounts ("namespace:name") are the
	// accounts daemons run as.
	AgentAudience        string
	AgentServiceAccounts []string

	// ResyncPeriod is the interval of full SyncStates to every daemon.
	ResyncPeriod time.Duration
	// SendQueueSize bounds each daemon's queue of deltas.
	SendQueueSize int
	// MaxConcurrentSyncs bounds full states built or sent at once.
	MaxConcurrentSyncs int
	// ClusterCIDRs are the cluster's pod CIDRs, dropped when strict and no
	// tunnel covers them.
	ClusterCIDRs []netip.Prefix

	// StatusQPS and StatusBurst bound status writes; StatusMinInterval is
	// the least time between two writes of one VpbluNode.
	StatusQPS         float32
	StatusBurst       int
	StatusMinInterval time.Duration
	StatusHeartbeat   time.Duration
	PolicyInterval    time.Duration

	// Rotation tunes the key rotations (overlap window of on-demand
	// rotations, settle time, resend interval); zero values take the
	// defaults of package rotation.
	Rotation rotation.Options

	// MetricsAddr and HealthAddr serve /metrics and /healthz, /readyz
	// ("0" turns one off).
	MetricsAddr string
	HealthAddr  string
	// DashboardAddr serves the web dashboard when DashboardPasswordHash
	// (bcrypt) is set; DashboardListener, when set, is used instead.
	DashboardAddr         string
	DashboardListener     net.Listener
	DashboardPasswordHash []byte
	// PprofAddr serves Go's profiles (empty: off).
	PprofAddr string
	// Registry receives the controller's metrics (default
	// controller-runtime's, which MetricsAddr serves).
	Registry prometheus.Registerer

	Logger *slog.Logger
}

func (o *Options) defaults() error {
	if o.Config == nil {
		return errors.New("manager: no API server config")
	}
	if o.Namespace == "" {
		return errors.New("manager: no namespace")
	}
	if o.LeaderElectionID == "" {
		o.LeaderElectionID = "vpblu-controller"
	}
	if o.LeaseDuration <= 0 {
		o.LeaseDuration = 15 * time.Second
	}
	if o.RenewDeadline <= 0 {
		o.RenewDeadline = o.LeaseDuration * 2 / 3
	}
	if o.RetryPeriod <= 0 {
		o.RetryPeriod = o.LeaseDuration / 7
	}
	if o.StreamAddr == "" {
		o.StreamAddr = ":8443"
	}
	if len(o.TLSDNSNames) == 0 && len(o.TLSIPs) == 0 {
		return errors.New("manager: the serving certificate needs at least one DNS name or IP")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
