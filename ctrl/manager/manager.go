package manager

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/util/flowcontrol"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	crmanager "sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/ctrl/auth"
	"github.com/lumbrjx/vpblu/ctrl/certs"
	"github.com/lumbrjx/vpblu/ctrl/dashboard"
	"github.com/lumbrjx/vpblu/ctrl/meshview"
	"github.com/lumbrjx/vpblu/ctrl/metrics"
	"github.com/lumbrjx/vpblu/ctrl/reconcile"
	"github.com/lumbrjx/vpblu/ctrl/status"
	"github.com/lumbrjx/vpblu/ctrl/streamserver"
)

// EventSource names the controller in Events.
const EventSource = "vpblu-controller"

// Run runs the controller until ctx ends or leadership is lost (then it
// returns an error and the process should exit, to start again as a
// standby).
func Run(ctx context.Context, opts Options) error {
	if err := opts.defaults(); err != nil {
		return err
	}
	log := opts.Logger
	scheme := reconcile.Scheme()

	direct, err := client.New(opts.Config, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("api client: %w", err)
	}
	ca, err := certs.EnsureCA(ctx, direct, certs.StoreOptions{
		Namespace: opts.Namespace, SecretName: opts.CASecret, ConfigMapName: opts.CAConfigMap,
	})
	if err != nil {
		return err
	}
	renewer, err := certs.NewRenewer(ca, certs.ServingOptions{DNSNames: opts.TLSDNSNames, IPs: opts.TLSIPs}, nil)
	if err != nil {
		return err
	}

	reg := opts.Registry
	if reg == nil {
		reg = ctrlmetrics.Registry
	}
	m, err := metrics.New(reg)
	if err != nil {
		return err
	}

	clientset, err := kubernetes.NewForConfig(opts.Config)
	if err != nil {
		return fmt.Errorf("clientset: %w", err)
	}
	var lock resourcelock.Interface
	if opts.LeaderElection {
		if lock, err = leaseLock(opts); err != nil {
			return err
		}
	}

	mgr, err := ctrl.NewManager(opts.Config, crmanager.Options{
		Scheme: scheme,
		Logger: logr.FromSlogHandler(log.Handler()),
		Cache: cache.Options{
			DefaultTransform: cache.TransformStripManagedFields(),
			ByObject: map[client.Object]cache.ByObject{
				&corev1.Pod{}:  {Transform: reconcile.TrimPod},
				&corev1.Node{}: {Transform: reconcile.TrimNode},
			},
		},
		LeaderElection:                      opts.LeaderElection,
		LeaderElectionResourceLockInterface: lock,
		LeaderElectionID:                    opts.LeaderElectionID,
		LeaderElectionNamespace:             opts.Namespace,
		LeaderElectionReleaseOnCancel:       true,
		LeaseDuration:                       &opts.LeaseDuration,
		RenewDeadline:                       &opts.RenewDeadline,
		RetryPeriod:                         &opts.RetryPeriod,
		Metrics:                             metricsserver.Options{BindAddress: opts.MetricsAddr},
		HealthProbeBindAddress:              opts.HealthAddr,
		PprofBindAddress:                    opts.PprofAddr,
	})
	if err != nil {
		return fmt.Errorf("controller manager: %w", err)
	}
	recorder := mgr.GetEventRecorder(EventSource)
	limiter := flowcontrol.NewTokenBucketRateLimiter(orDefault(opts.StatusQPS, status.DefaultQPS), orDefault(opts.StatusBurst, status.DefaultBurst))

	keys := &reconcile.Keys{}
	pusher := &deferredPusher{}
	var nodesW *status.Nodes
	var policiesW *status.Policies
	var rot *rotations
	planner := reconcile.NewPlanner(pusher, func(ch reconcile.Change) {
		m.GenerationSeq.Set(float64(ch.Gen.Seq))
		for _, n := range ch.Nodes {
			nodesW.Mark(n)
		}
		policiesW.Trigger()
		if len(ch.Nodes) > 0 || ch.Policies {
			// The desired peers may have changed.
			rot.touch()
		}
	})
	loader := reconcile.NewLoader(reconcile.LoaderOptions{
		Reader: mgr.GetCache(), Synced: mgr.GetCache().WaitForCacheSync, Epoch: leaseEpoch(lock),
		Planner: planner, Keys: keys, ClusterCIDRs: opts.ClusterCIDRs,
		OnLoaded: func(epoch uint64, problems []error) {
			m.LeaderEpoch.Set(float64(epoch))
			log.Info("leading", "epoch", epoch, "problems", len(problems))
		},
	})
	feed := reconcile.NewFeed(reconcile.FeedOptions{Reader: mgr.GetCache(), Planner: planner, Keys: keys, Ready: loader.Ready()})
	nodesW = status.NewNodes(status.NodesOptions{
		Client: mgr.GetClient(), Reader: mgr.GetCache(), Plan: planner, Limiter: limiter,
		MinInterval: opts.StatusMinInterval, Heartbeat: opts.StatusHeartbeat,
		Recorder: recorder, Metrics: m, Logger: log,
	})
	reviewer, err := auth.NewReviewer(auth.Options{
		Reviewer: clientset.AuthenticationV1().TokenReviews(), Audience: opts.AgentAudience,
		ServiceAccounts: opts.AgentServiceAccounts,
	})
	if err != nil {
		return err
	}
	lead := &leadership{ready: loader.Ready(), metrics: m}
	rot = newRotations(rotationOptions{
		Machine: opts.Rotation, Reader: mgr.GetCache(), States: planner, Ready: loader.Ready(),
		Writer:   status.Rotation{Client: mgr.GetClient(), API: mgr.GetAPIReader(), Metrics: m},
		Keys:     []keySink{feed, nodesW},
		Recorder: recorder, Metrics: m, Logger: log,
	})
	srv, err := streamserver.New(streamserver.Options{
		Leader: lead, Auth: reviewer, State: planner, Observer: observer{feed: feed, nodes: nodesW, rot: rot},
		Metrics: m, Logger: log, QueueSize: opts.SendQueueSize, ResyncPeriod: opts.ResyncPeriod,
		MaxConcurrentSyncs: opts.MaxConcurrentSyncs,
	})
	if err != nil {
		return err
	}
	pusher.srv = srv
	rot.opts.Sender = srv
	policiesW = status.NewPolicies(status.PoliciesOptions{
		Client: mgr.GetClient(), Reader: mgr.GetCache(), Plan: planner, Sync: srv.NodeSync,
		Limiter: limiter, Interval: opts.PolicyInterval, Recorder: recorder, Metrics: m, Logger: log,
	})

	lis := opts.Listener
	if lis == nil {
		if lis, err = net.Listen("tcp", opts.StreamAddr); err != nil {
			return fmt.Errorf("stream listener: %w", err)
		}
	}
	stream := &streamRunnable{srv: srv, grpc: srv.GRPCServer(renewer.TLSConfig()), lis: lis}
	lifecycle := &reconcile.Lifecycle{Client: mgr.GetClient(), Recorder: recorder}
	for _, r := range []crmanager.Runnable{stream, lead, loader, nodesW, policiesW, rot} {
		if err := mgr.Add(r); err != nil {
			return fmt.Errorf("add runnable: %w", err)
		}
	}
	if err := feed.SetupWithManager(mgr); err != nil {
		return err
	}
	if err := lifecycle.SetupWithManager(mgr); err != nil {
		return err
	}
	// Informers run on standbys too, so a new leader starts from warm
	// caches.
	for _, obj := range []client.Object{&corev1.Node{}, &corev1.Pod{}, &v1alpha1.VpbluNode{},
		&v1alpha1.TunnelPolicy{}, &v1alpha1.RoutePolicy{}, &v1alpha1.BlockPolicy{}, &v1alpha1.RotationPolicy{}} {
		inf, err := mgr.GetCache().GetInformer(ctx, obj)
		if err != nil {
			return fmt.Errorf("informer: %w", err)
		}
		if h := rot.watch(obj); h != nil {
			if _, err := inf.AddEventHandler(h); err != nil {
				return fmt.Errorf("rotation event handler: %w", err)
			}
		}
	}
	if len(opts.DashboardPasswordHash) > 0 {
		dash, err := dashboard.New(dashboard.Options{
			PasswordHash: opts.DashboardPasswordHash,
			Load: func(ctx context.Context) (*meshview.Mesh, error) {
				return meshview.Load(ctx, mgr.GetCache(), time.Now())
			},
			Reports: func(node string) *meshpb.TunnelStatus {
				if r, ok := nodesW.Report(node); ok {
					return r.Status
				}
				return nil
			},
			Log: log.With("component", "dashboard"),
		})
		if err != nil {
			return err
		}
		// Every replica serves it (from its warm cache); only the leader
		// has the daemons' live reports.
		shutdown := 5 * time.Second
		serve := &crmanager.Server{Name: "dashboard", Server: dash.HTTPServer(opts.DashboardAddr), Listener: opts.DashboardListener, ShutdownTimeout: &shutdown}
		if err := mgr.Add(serve); err != nil {
			return fmt.Errorf("add dashboard: %w", err)
		}
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("stream", func(*http.Request) error { return nil }); err != nil {
		return fmt.Errorf("ready check: %w", err)
	}
	log.Info("starting", "stream", lis.Addr().String(), "namespace", opts.Namespace, "leaderElection", opts.LeaderElection)
	return mgr.Start(ctx)
}

// leaseLock returns the leader election lock. It talks to the API server
// over a connection of its own, with a timeout below the renew deadline:
// on a shared HTTP/2 connection a storm of TokenReviews could hold a
// renewal back until the lease is lost.
func leaseLock(opts Options) (resourcelock.Interface, error) {
	cfg := rest.CopyConfig(opts.Config)
	cfg.Timeout = max(opts.RenewDeadline/2, time.Second)
	// A config with its own dialer never shares a cached transport.
	cfg.Dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	cfg = rest.AddUserAgent(cfg, "leader-election")
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("leader election client: %w", err)
	}
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, opts.Namespace, opts.LeaderElectionID,
		cs.CoreV1(), cs.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: identity()})
	if err != nil {
		return nil, fmt.Errorf("lease lock: %w", err)
	}
	return lock, nil
}

// identity names this replica in the Lease: the pod's name (the
// Deployment sets POD_NAME from the downward API) or, outside a pod, the
// host name, plus a random suffix so a restarted replica is a new holder.
func identity() string {
	host := os.Getenv("POD_NAME")
	if host == "" {
		host, _ = os.Hostname()
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return host + "_" + hex.EncodeToString(b[:])
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
