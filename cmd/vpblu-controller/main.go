// Command vpblu-controller is the vpblu controller: it keeps one VpbluNode
// per Node, computes every node's desired state from the vpblu policies and
// pushes it to the daemons over authenticated gRPC streams, and writes
// status and Events. Run two replicas: one leads (Lease), the other
// answers daemons with "not leader" and takes over when the leader goes.
//
// Usage:
//
//	vpblu-controller [flags]
//
// Flags:
//
//	--kubeconfig path           kubeconfig (default: in-cluster, then $KUBECONFIG, then ~/.kube/config)
//	--namespace ns              namespace of the Lease and the CA Secret/ConfigMap (default $POD_NAMESPACE or vpblu-system)
//	--leader-elect              use Lease-based leader election (default true)
//	--leader-election-id name   name of the Lease (default vpblu-controller)
//	--lease-duration d          how long a standby waits before taking over (default 15s)
//	--renew-deadline d          how long the leader retries renewing before it gives up (default 2/3 of the lease)
//	--retry-period d            interval of lease attempts (default 1/7 of the lease)
//	--stream-addr addr          where daemons connect, gRPC over TLS (default :8443)
//	--tls-dns-names list        DNS SANs of the serving certificate (default the Service names in the namespace)
//	--tls-ip-addresses list     IP SANs of the serving certificate
//	--ca-secret name            Secret holding the CA, created if absent (default vpblu-ca)
//	--ca-configmap name         ConfigMap the CA certificate is published in (default vpblu-ca)
//	--agent-audience aud        audience of daemon tokens (default vpblu.io/agent)
//	--agent-service-accounts l  accounts daemons run as, namespace:name (default <namespace>:vpblu-agent)
//	--cluster-cidrs list        the cluster's pod CIDRs
//	--resync-period d           interval of full SyncStates to every daemon (default 5m)
//	--send-queue-size n         per-daemon queue of deltas before it collapses into a SyncState (default 64)
//	--max-concurrent-syncs n    full states built or sent at once (default 8)
//	--status-qps q, --status-burst n   rate limit of status writes (default 20, 50)
//	--status-min-interval d     least time between two writes of one VpbluNode status (default 10s)
//	--status-heartbeat d        how stale status.lastSeen may get (default 5m)
//	--kube-api-qps q, --kube-api-burst n   client-side API rate limit (default 0: none, rely on API priority and fairness)
//	--metrics-addr addr         Prometheus metrics (default :8080, "0" off)
//	--health-addr addr          /healthz and /readyz (default :8081, "0" off)
//	--pprof-addr addr           Go profiles under /debug/pprof (default off)
//	--dashboard-addr addr       the web dashboard (default :8082), served when --dashboard-password-file is set
//	--dashboard-password-file f bcrypt hash (or htpasswd line) of the dashboard password
//	--log-level level           debug, info, warn or error (default info)
//	--log-format format         text or json (default json)
package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/lumbrjx/vpblu/ctrl/manager"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "vpblu-controller:", err)
		os.Exit(1)
	}
}

type flags struct {
	opts            manager.Options
	dnsNames, ips   string
	serviceAccounts string
	clusterCIDRs    string
	dashboardHash   string
	apiQPS          float64
	apiBurst        int
	statusQPS       float64
	logLevel        string
	logFormat       string
}

func parse(args []string) (*flags, error) {
	fs := flag.NewFlagSet("vpblu-controller", flag.ContinueOnError)
	config.RegisterFlags(fs)
	f := &flags{}
	o := &f.opts
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		ns = "vpblu-system"
	}
	fs.StringVar(&o.Namespace, "namespace", ns, "namespace of the Lease and the CA Secret and ConfigMap")
	fs.BoolVar(&o.LeaderElection, "leader-elect", true, "use Lease-based leader election")
	fs.StringVar(&o.LeaderElectionID, "leader-election-id", "vpblu-controller", "name of the Lease")
	fs.DurationVar(&o.LeaseDuration, "lease-duration", 15*time.Second, "how long a standby waits before taking over")
	fs.DurationVar(&o.RenewDeadline, "renew-deadline", 0, "how long the leader retries renewing (default 2/3 of the lease)")
	fs.DurationVar(&o.RetryPeriod, "retry-period", 0, "interval of lease attempts (default 1/7 of the lease)")
	fs.StringVar(&o.StreamAddr, "stream-addr", ":8443", "where daemons connect (gRPC over TLS)")
	fs.StringVar(&f.dnsNames, "tls-dns-names", "", "comma-separated DNS SANs of the serving certificate (default the Service names)")
	fs.StringVar(&f.ips, "tls-ip-addresses", "", "comma-separated IP SANs of the serving certificate")
	fs.StringVar(&o.CASecret, "ca-secret", "vpblu-ca", "Secret holding the CA (created if absent)")
	fs.StringVar(&o.CAConfigMap, "ca-configmap", "vpblu-ca", "ConfigMap the CA certificate is published in")
	fs.StringVar(&o.AgentAudience, "agent-audience", "vpblu.io/agent", "audience of daemon tokens")
	fs.StringVar(&f.serviceAccounts, "agent-service-accounts", "", "comma-separated namespace:name accounts daemons run as (default <namespace>:vpblu-agent)")
	fs.StringVar(&f.clusterCIDRs, "cluster-cidrs", "", "comma-separated pod CIDRs of the cluster")
	fs.DurationVar(&o.ResyncPeriod, "resync-period", 5*time.Minute, "interval of full SyncStates to every daemon")
	fs.IntVar(&o.SendQueueSize, "send-queue-size", 64, "per-daemon queue of deltas before it collapses into a SyncState")
	fs.IntVar(&o.MaxConcurrentSyncs, "max-concurrent-syncs", 8, "full states built or sent at once")
	fs.Float64Var(&f.statusQPS, "status-qps", 20, "status writes per second")
	fs.IntVar(&o.StatusBurst, "status-burst", 50, "burst of status writes")
	fs.DurationVar(&o.StatusMinInterval, "status-min-interval", 10*time.Second, "least time between two writes of one VpbluNode status")
	fs.DurationVar(&o.StatusHeartbeat, "status-heartbeat", 5*time.Minute, "how stale status.lastSeen may get")
	fs.Float64Var(&f.apiQPS, "kube-api-qps", 0, "client-side API rate limit (0: none, rely on API priority and fairness)")
	fs.IntVar(&f.apiBurst, "kube-api-burst", 0, "client-side API burst")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", ":8080", `Prometheus metrics address ("0" off)`)
	fs.StringVar(&o.HealthAddr, "health-addr", ":8081", `health probe address ("0" off)`)
	fs.StringVar(&o.PprofAddr, "pprof-addr", "", "address serving Go profiles under /debug/pprof (default off)")
	fs.StringVar(&o.DashboardAddr, "dashboard-addr", ":8082", "address of the web dashboard, served when --dashboard-password-file is set")
	fs.StringVar(&f.dashboardHash, "dashboard-password-file", "", "file holding the bcrypt hash (or an htpasswd line) of the dashboard password (empty: no dashboard)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "json", "text or json")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	o.TLSDNSNames = split(f.dnsNames)
	if len(o.TLSDNSNames) == 0 {
		o.TLSDNSNames = []string{"vpblu-controller." + o.Namespace + ".svc", "vpblu-controller." + o.Namespace + ".svc.cluster.local"}
	}
	for _, s := range split(f.ips) {
		ip := net.ParseIP(s)
		if ip == nil {
			return nil, fmt.Errorf("--tls-ip-addresses: %q is not an IP address", s)
		}
		o.TLSIPs = append(o.TLSIPs, ip)
	}
	o.AgentServiceAccounts = split(f.serviceAccounts)
	if len(o.AgentServiceAccounts) == 0 {
		o.AgentServiceAccounts = []string{o.Namespace + ":vpblu-agent"}
	}
	for _, s := range split(f.clusterCIDRs) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("--cluster-cidrs: %w", err)
		}
		o.ClusterCIDRs = append(o.ClusterCIDRs, p)
	}
	o.StatusQPS = float32(f.statusQPS)
	if f.dashboardHash != "" {
		b, err := os.ReadFile(f.dashboardHash)
		if err != nil {
			return nil, fmt.Errorf("--dashboard-password-file: %w", err)
		}
		o.DashboardPasswordHash = b
	}
	return f, nil
}

func split(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	ho := &slog.HandlerOptions{Level: l}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, ho)), nil
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, ho)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is neither text nor json", format)
}

func run(args []string) error {
	f, err := parse(args)
	if err != nil {
		return err
	}
	log, err := newLogger(f.logLevel, f.logFormat)
	if err != nil {
		return err
	}
	// controller-runtime and client-go log through the same handler.
	ctrllog.SetLogger(logr.FromSlogHandler(log.Handler()))
	klog.SetLogger(logr.FromSlogHandler(log.Handler()))

	cfg, err := config.GetConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	if f.apiQPS > 0 {
		cfg.QPS, cfg.Burst = float32(f.apiQPS), f.apiBurst
	}
	cfg.UserAgent = "vpblu-controller"
	f.opts.Config = cfg
	f.opts.Logger = log
	return manager.Run(ctrl.SetupSignalHandler(), f.opts)
}
