package sim

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lumbrjx/vpblu/e2e"
	"github.com/lumbrjx/vpblu/tools/testenv"
)

// Options shape a simulated cluster.
type Options struct {
	// Slot selects the address range and names (0..255); two clusters on
	// one machine need different slots.
	Slot        int
	Nodes       int
	PodsPerNode int
	// Controllers is the number of controller replicas (default 2).
	Controllers int
	// Backend is "kernel", "userspace" or "" for the environment's
	// VPBLU_SIM_BACKEND, else kernel when the kernel has WireGuard.
	Backend string
	// RunDir holds logs, tokens, keys and PID files (default
	// /tmp/vpblu-sim-<slot>).
	RunDir string
	// ListenPort is the WireGuard port (default 51820).
	ListenPort int
	// LeaseDuration is the controllers' leader lease (default 4s).
	LeaseDuration time.Duration
	// BlockCapacity is the agents' block-rule capacity (default 512).
	BlockCapacity int
	// Log receives progress messages (default: discarded).
	Log *slog.Logger
}

func (o *Options) defaults() {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.PodsPerNode == 0 {
		o.PodsPerNode = 2
	}
	if o.Controllers == 0 {
		o.Controllers = 2
	}
	if o.Backend == "" {
		o.Backend = os.Getenv("VPBLU_SIM_BACKEND")
	}
	if o.Backend == "" {
		o.Backend = detectBackend()
	}
	if o.RunDir == "" {
		o.RunDir = fmt.Sprintf("/tmp/vpblu-sim-%d", o.Slot)
	}
	if o.ListenPort == 0 {
		o.ListenPort = 51820
	}
	if o.LeaseDuration == 0 {
		// VPBLU_SIM_LEASE_DURATION: under software emulation (the VM
		// runner) API calls take seconds and a 4 s lease would flap.
		o.LeaseDuration, _ = time.ParseDuration(os.Getenv("VPBLU_SIM_LEASE_DURATION"))
	}
	if o.LeaseDuration <= 0 {
		o.LeaseDuration = 4 * time.Second
	}
	if o.BlockCapacity == 0 {
		o.BlockCapacity = 512
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

const (
	leaseName         = "vpblu-controller"
	streamBasePort    = 9443
	healthBasePort    = 9480
	dashboardBasePort = 9490
	agentHealth       = "127.0.0.1:9190"
	// TunnelInterface is the mesh interface the agents create.
	TunnelInterface = "wg-mesh"
)

// Cluster is a running simulated cluster: network, API server,
// controllers and agents. It implements e2e.Cluster.
type Cluster struct {
	opts Options
	Net  *Network
	Env  *testenv.Env
	cs   kubernetes.Interface
	bins Binaries
	ca   []byte
	// dashboardPassword is the dashboard's password; the controllers get
	// only its bcrypt hash, as from the chart's Secret.
	dashboardPassword string

	mu          sync.Mutex
	controllers []*Proc
	holders     map[string]*Proc
	agents      map[string]*Proc
}

var _ e2e.Cluster = (*Cluster)(nil)

// Start brings up a cluster from nothing. Leftovers of an earlier run of
// the same slot are removed first. On error everything is torn down.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	opts.defaults()
	if opts.Backend != "kernel" && opts.Backend != "userspace" {
		return nil, fmt.Errorf("backend %q: want kernel or userspace", opts.Backend)
	}
	c := &Cluster{opts: opts, holders: map[string]*Proc{}, agents: map[string]*Proc{}}
	log := opts.Log
	if err := Sweep(opts.Slot, opts.RunDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.RunDir, 0o700); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Close())
		}
	}()

	log.Info("building binaries")
	// A directory per slot: simulators in two slots may build at once.
	if c.bins, err = BuildBinaries(ctx, filepath.Join(cacheDir(), fmt.Sprintf("sim-bin-%d", opts.Slot))); err != nil {
		return nil, err
	}
	log.Info("building network", "nodes", opts.Nodes, "podsPerNode", opts.PodsPerNode)
	if c.Net, err = BuildNetwork(NetworkOptions{Slot: opts.Slot, Nodes: opts.Nodes, PodsPerNode: opts.PodsPerNode}); err != nil {
		return nil, err
	}
	log.Info("starting the API server")
	if c.Env, err = testenv.New(testenv.Options{}); err != nil {
		return nil, err
	}
	if c.cs, err = kubernetes.NewForConfig(c.Env.Config); err != nil {
		return nil, err
	}
	kubeconfig := filepath.Join(opts.RunDir, "kubeconfig")
	raw, err := os.ReadFile(c.Env.Kubeconfig)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(kubeconfig, raw, 0o600); err != nil {
		return nil, err
	}
	if err := ensureSystem(ctx, c.cs); err != nil {
		return nil, err
	}
	for _, n := range c.Net.Nodes {
		if err := registerNode(ctx, c.cs, n); err != nil {
			return nil, err
		}
	}
	if c.dashboardPassword, err = writeDashboardPassword(filepath.Join(opts.RunDir, "dashboard-password-hash")); err != nil {
		return nil, err
	}
	log.Info("starting controllers", "replicas", opts.Controllers)
	c.controllers = make([]*Proc, opts.Controllers)
	if err := c.StartControllers(ctx); err != nil {
		return nil, err
	}
	if c.ca, err = c.waitCA(ctx); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(opts.RunDir, "ca.crt"), c.ca, 0o644); err != nil {
		return nil, err
	}
	log.Info("starting agents", "backend", opts.Backend)
	if err := c.StartAgents(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Close stops every process and removes the network and run directory.
func (c *Cluster) Close() error {
	var errs []error
	c.mu.Lock()
	procs := append([]*Proc(nil), c.controllers...)
	for _, p := range c.agents {
		procs = append(procs, p)
	}
	for _, p := range c.holders {
		procs = append(procs, p)
	}
	c.mu.Unlock()
	for _, p := range procs {
		if p != nil {
			_ = p.Stop(syscall.SIGTERM, 5*time.Second)
		}
	}
	if c.Env != nil {
		if err := c.Env.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop API server: %w", err))
		}
	}
	errs = append(errs, Sweep(c.opts.Slot, c.opts.RunDir))
	return errors.Join(errs...)
}

// Sweep removes everything a slot's simulator may have left behind:
// processes recorded in its run directory, its namespaces and links, and
// the run directory itself.
func Sweep(slot int, runDir string) error {
	var errs []error
	if runDir != "" {
		errs = append(errs, killRecorded(runDir))
	}
	errs = append(errs, SweepNetwork(Plan{Slot: slot}))
	if runDir != "" {
		if err := os.RemoveAll(runDir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func cacheDir() string {
	if d := os.Getenv("VPBLU_CACHE"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "vpblu")
}

// ---- controllers ----

func (c *Cluster) controllerArgs(i int) []string {
	p := c.Net.Plan
	return []string{
		c.bins.Controller,
		"--kubeconfig", filepath.Join(c.opts.RunDir, "kubeconfig"),
		"--namespace", SystemNamespace,
		"--stream-addr", netip.AddrPortFrom(p.HostV4(), uint16(streamBasePort+i)).String(),
		"--tls-ip-addresses", p.HostV4().String(),
		"--cluster-cidrs", p.ClusterV4().String() + "," + p.ClusterV6().String(),
		"--log-format", "text",
		// On the slot's host address, so simulators in two slots coexist.
		"--health-addr", netip.AddrPortFrom(p.HostV4(), uint16(healthBasePort+2*i)).String(),
		"--metrics-addr", netip.AddrPortFrom(p.HostV4(), uint16(healthBasePort+2*i+1)).String(),
		"--dashboard-addr", netip.AddrPortFrom(p.HostV4(), uint16(dashboardBasePort+i)).String(),
		"--dashboard-password-file", filepath.Join(c.opts.RunDir, "dashboard-password-hash"),
		"--lease-duration", c.opts.LeaseDuration.String(),
		"--renew-deadline", (c.opts.LeaseDuration * 3 / 4).String(),
		"--retry-period", (c.opts.LeaseDuration / 8).String(),
	}
}

// StartControllers starts every controller replica that is not running.
func (c *Cluster) StartControllers(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.controllers {
		if p := c.controllers[i]; p != nil && p.Running() {
			continue
		}
		// POD_NAME is the replica's leader-election identity, as the
		// Deployment's downward API sets it.
		env := []string{"POD_NAME=" + controllerIdentity(i), "POD_NAMESPACE=" + SystemNamespace}
		p, err := startProc(c.opts.RunDir, fmt.Sprintf("controller-%d", i), c.controllerArgs(i), env)
		if err != nil {
			return err
		}
		c.controllers[i] = p
	}
	return nil
}

// StopControllers stops every controller replica.
func (c *Cluster) StopControllers(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.controllers {
		if p != nil {
			_ = p.Stop(syscall.SIGTERM, 10*time.Second)
		}
	}
	return nil
}

// KillController kills replica i with SIGKILL.
func (c *Cluster) KillController(ctx context.Context, i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i < 0 || i >= len(c.controllers) || c.controllers[i] == nil {
		return fmt.Errorf("no controller replica %d", i)
	}
	return c.controllers[i].Stop(syscall.SIGKILL, 5*time.Second)
}

// Leader returns the index of the replica holding the lease.
func (c *Cluster) Leader(ctx context.Context) (int, error) {
	lease := &coordinationv1.Lease{}
	if err := c.Env.Client.Get(ctx, types.NamespacedName{Namespace: SystemNamespace, Name: leaseName}, lease); err != nil {
		return -1, fmt.Errorf("leader lease: %w", err)
	}
	holder := ""
	if lease.Spec.HolderIdentity != nil {
		holder = *lease.Spec.HolderIdentity
	}
	if lease.Spec.RenewTime == nil || lease.Spec.LeaseDurationSeconds == nil ||
		time.Since(lease.Spec.RenewTime.Time) > time.Duration(*lease.Spec.LeaseDurationSeconds)*time.Second {
		return -1, fmt.Errorf("lease held by %q has expired", holder)
	}
	for i := range c.controllers {
		if id := controllerIdentity(i); holder == id || strings.HasPrefix(holder, id+"_") {
			return i, nil
		}
	}
	return -1, fmt.Errorf("lease held by unknown %q", holder)
}

func controllerIdentity(i int) string { return fmt.Sprintf("sim-controller-%d", i) }

// LeaseDuration is the controllers' lease duration.
func (c *Cluster) LeaseDuration() time.Duration { return c.opts.LeaseDuration }

func (c *Cluster) waitCA(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		cm, err := c.cs.CoreV1().ConfigMaps(SystemNamespace).Get(ctx, "vpblu-ca", metav1.GetOptions{})
		if err == nil && cm.Data["ca.crt"] != "" {
			return []byte(cm.Data["ca.crt"]), nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("controller never published its CA (ConfigMap %s/vpblu-ca): %w\n%s", SystemNamespace, ctx.Err(), c.controllerLogs())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *Cluster) controllerLogs() string {
	var b strings.Builder
	for _, p := range c.controllers {
		if p != nil {
			fmt.Fprintf(&b, "--- %s (%s)\n%s\n", p.Name, p.Log, p.Tail(3000))
		}
	}
	return b.String()
}

// Dashboards returns the URL of every controller replica's dashboard and
// the password.
func (c *Cluster) Dashboards() ([]string, string) {
	var urls []string
	for i := 0; i < c.opts.Controllers; i++ {
		urls = append(urls, "http://"+netip.AddrPortFrom(c.Net.Plan.HostV4(), uint16(dashboardBasePort+i)).String())
	}
	return urls, c.dashboardPassword
}

// writeDashboardPassword makes up a password and writes its bcrypt hash
// to path.
func writeDashboardPassword(path string) (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	password := base64.RawURLEncoding.EncodeToString(b)
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, hash, 0o600); err != nil {
		return "", fmt.Errorf("dashboard password hash: %w", err)
	}
	return password, nil
}

// StreamAddrs are the controllers' stream addresses.
func (c *Cluster) StreamAddrs() []string {
	var out []string
	for i := 0; i < c.opts.Controllers; i++ {
		out = append(out, netip.AddrPortFrom(c.Net.Plan.HostV4(), uint16(streamBasePort+i)).String())
	}
	return out
}

// CABundle is the CA certificate the agents trust.
func (c *Cluster) CABundle() []byte { return c.ca }

// ---- agents ----

func (c *Cluster) nodeDir(node string) string { return filepath.Join(c.opts.RunDir, node) }

// startHolder starts the process that keeps a node's private mount
// namespace alive: it owns a tmpfs on /run/wireguard (userspace WireGuard
// sockets are not separated by network namespaces) and a bpffs of the
// node's own on /sys/fs/bpf, so pins survive agent restarts and vanish
// with the node.
func (c *Cluster) startHolder(n *Node) (*Proc, error) {
	script := `mkdir -p /run/wireguard && mount -t tmpfs -o mode=0755 vpblu-sim /run/wireguard && mount -t bpf bpf /sys/fs/bpf && exec sleep 2147483647`
	argv := []string{"ip", "netns", "exec", n.NS.Name, "sh", "-c", script, "vpblu-sim-holder", c.opts.RunDir}
	p, err := startProc(c.opts.RunDir, n.Name+"-holder", argv, nil)
	if err != nil {
		return nil, err
	}
	// The mounts are in place once /run/wireguard in the holder's
	// mount namespace is a tmpfs. A minute: under software emulation on a
	// busy host starting a shell and two mounts has taken over 10 s.
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/mounts", p.PID())); err == nil && strings.Contains(string(raw), "vpblu-sim /run/wireguard") && strings.Contains(string(raw), "bpf /sys/fs/bpf") {
			return p, nil
		}
		if !p.Running() {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = p.Stop(syscall.SIGKILL, time.Second)
	return nil, fmt.Errorf("mount namespace of %s not ready: %s", n.Name, p.Tail(1000))
}

// inNode returns argv that runs a command in a node's network and mount
// namespaces.
func (c *Cluster) inNode(node string, argv ...string) ([]string, error) {
	c.mu.Lock()
	h := c.holders[node]
	c.mu.Unlock()
	if h == nil || !h.Running() {
		return nil, fmt.Errorf("node %s has no running namespace holder", node)
	}
	// --root: entering a mount namespace resets the root directory to the
	// namespace's; where the simulator itself runs chrooted (the VM
	// guest's /init chroots into the host's tree) that root is not ours.
	return append([]string{"nsenter", "--target", strconv.Itoa(h.PID()), "--mount", "--net", "--root", "--wd", "--"}, argv...), nil
}

func (c *Cluster) agentArgs(n *Node) []string {
	dir := c.nodeDir(n.Name)
	return []string{
		c.bins.Agent,
		"--node", n.Name,
		"--controllers", strings.Join(c.StreamAddrs(), ","),
		"--ca-file", filepath.Join(c.opts.RunDir, "ca.crt"),
		"--token-file", filepath.Join(dir, "token"),
		"--state-dir", filepath.Join(dir, "state"),
		"--backend", c.opts.Backend,
		"--pod-interfaces", PodVethPrefix + "*",
		"--node-ip", n.IPv4.String(),
		"--cluster-cidrs", c.Net.Plan.ClusterV4().String() + "," + c.Net.Plan.ClusterV6().String(),
		"--max-block-rules", strconv.Itoa(c.opts.BlockCapacity),
		"--health-addr", agentHealth,
		"--metrics-addr", "127.0.0.1:9191",
	}
}

// StartAgents starts every node's agent that is not running and waits
// until each has installed its data plane (its /healthz answers), which
// happens before it has heard from a controller.
func (c *Cluster) StartAgents(ctx context.Context) error {
	for _, n := range c.Net.Nodes {
		if err := c.startAgent(ctx, n); err != nil {
			return err
		}
	}
	for _, n := range c.Net.Nodes {
		if err := c.waitAgentHealthy(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) startAgent(ctx context.Context, n *Node) error {
	c.mu.Lock()
	running := c.agents[n.Name] != nil && c.agents[n.Name].Running()
	holder := c.holders[n.Name]
	c.mu.Unlock()
	if running {
		return nil
	}
	if holder == nil || !holder.Running() {
		h, err := c.startHolder(n)
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.holders[n.Name] = h
		c.mu.Unlock()
	}
	dir := c.nodeDir(n.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	token, err := agentToken(ctx, c.cs, n.Name, 3600)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(token), 0o600); err != nil {
		return err
	}
	argv, err := c.inNode(n.Name, c.agentArgs(n)...)
	if err != nil {
		return err
	}
	p, err := startProc(c.opts.RunDir, n.Name+"-agent", argv, nil)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.agents[n.Name] = p
	c.mu.Unlock()
	return nil
}

func (c *Cluster) waitAgentHealthy(ctx context.Context, n *Node) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		c.mu.Lock()
		p := c.agents[n.Name]
		c.mu.Unlock()
		if p == nil || !p.Running() {
			tail := ""
			if p != nil {
				tail = p.Tail(3000)
			}
			return fmt.Errorf("agent of %s exited:\n%s", n.Name, tail)
		}
		if httpGetInNS(ctx, n.NS, "http://"+agentHealth+"/healthz") == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("agent of %s never became healthy:\n%s", n.Name, p.Tail(3000))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// RestartAgent stops a node's agent with SIGTERM and starts it again.
func (c *Cluster) RestartAgent(ctx context.Context, node string) error {
	n := c.node(node)
	if n == nil {
		return fmt.Errorf("no node %s", node)
	}
	c.mu.Lock()
	p := c.agents[node]
	c.mu.Unlock()
	if p != nil {
		_ = p.Stop(syscall.SIGTERM, 10*time.Second)
	}
	if err := c.startAgent(ctx, n); err != nil {
		return err
	}
	return c.waitAgentHealthy(ctx, n)
}

// UninstallAgents stops every agent and runs `vpblu-agent --uninstall` on
// every node, which removes everything the agent made: vpblu is off.
func (c *Cluster) UninstallAgents(ctx context.Context) error {
	var errs []error
	for _, n := range c.Net.Nodes {
		c.mu.Lock()
		p := c.agents[n.Name]
		c.mu.Unlock()
		if p != nil {
			_ = p.Stop(syscall.SIGTERM, 10*time.Second)
		}
		argv, err := c.inNode(n.Name, append(c.agentArgs(n), "--uninstall")...)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if out, err := runArgv(ctx, argv); err != nil {
			errs = append(errs, fmt.Errorf("uninstall on %s: %w\n%s", n.Name, err, out))
		}
	}
	return errors.Join(errs...)
}

// AgentToken returns a fresh token of a node's agent.
func (c *Cluster) AgentToken(ctx context.Context, node string) (string, error) {
	return agentToken(ctx, c.cs, node, 3600)
}

func (c *Cluster) node(name string) *Node {
	for _, n := range c.Net.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// ---- e2e.Cluster: API and inventory ----

func (c *Cluster) Client() client.Client           { return c.Env.Client }
func (c *Cluster) Clientset() kubernetes.Interface { return c.cs }
func (c *Cluster) Backend() string                 { return c.opts.Backend }
func (c *Cluster) ListenPort() int                 { return c.opts.ListenPort }
func (c *Cluster) TunnelInterface() string         { return TunnelInterface }
func (c *Cluster) BlockCapacity() int              { return c.opts.BlockCapacity }
func (c *Cluster) RunDir() string                  { return c.opts.RunDir }
func (c *Cluster) Controllers() []*Proc            { return c.controllers }
func (c *Cluster) Agent(node string) *Proc         { c.mu.Lock(); defer c.mu.Unlock(); return c.agents[node] }
func (c *Cluster) NodeByName(name string) *Node    { return c.node(name) }
func (c *Cluster) Kubeconfig() string              { return filepath.Join(c.opts.RunDir, "kubeconfig") }

// Binaries are the programs the cluster runs, and the kubectl plugin.
func (c *Cluster) Binaries() Binaries { return c.bins }

// Nodes lists the cluster's nodes.
func (c *Cluster) Nodes() []e2e.Node {
	var out []e2e.Node
	for _, n := range c.Net.Nodes {
		out = append(out, e2e.Node{Name: n.Name, IPv4: n.IPv4, IPv6: n.IPv6})
	}
	return out
}

// Pods lists the workload pods.
func (c *Cluster) Pods() []e2e.Pod {
	var out []e2e.Pod
	for _, n := range c.Net.Nodes {
		for _, p := range n.Pods {
			out = append(out, e2e.Pod{Name: p.Name, Node: n.Name, IPv4: p.IPv4, IPv6: p.IPv6})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// PodNamespace is the network namespace of a workload pod.
func (c *Cluster) PodNamespace(name string) string {
	if p := c.pod(name); p != nil {
		return p.NS.Name
	}
	return ""
}

func (c *Cluster) pod(name string) *Pod {
	for _, n := range c.Net.Nodes {
		for _, p := range n.Pods {
			if p.Name == name {
				return p
			}
		}
	}
	return nil
}
