package e2e

import (
	"context"
	"net/netip"
	"time"

	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Cluster is what the acceptance suite needs from a running vpblu
// cluster. The simulator (sim) implements it with network namespaces; the
// VM runner runs the simulator inside a VM with kernel WireGuard; a kind
// runner would implement it with containers.
type Cluster interface {
	// Client and Clientset reach the API server as a cluster admin.
	Client() client.Client
	Clientset() kubernetes.Interface
	// Nodes and Pods are the cluster's nodes and workload pods.
	Nodes() []Node
	Pods() []Pod
	// Backend is the WireGuard backend the agents run: kernel or userspace.
	Backend() string
	// ListenPort is the WireGuard port of the mesh's TunnelPolicy.
	ListenPort() int
	// TunnelInterface is the name of the mesh interface on every node.
	TunnelInterface() string
	// BlockCapacity is how many block rules the agents' maps hold; a
	// policy with more must be refused by the data plane, not half-applied.
	BlockCapacity() int

	// Ping runs ping in a pod with the given extra arguments and returns
	// its output; an error means ping failed.
	Ping(ctx context.Context, from Pod, to netip.Addr, args ...string) (string, error)
	// StartFlow starts rate sequence-numbered UDP datagrams per second
	// from one pod to another's address.
	StartFlow(from, to Pod, dst netip.Addr, rate int) (Flow, error)
	// StartCapture captures the underlay that carries node-to-node
	// traffic.
	StartCapture(ctx context.Context) (Capture, error)
	// Iperf runs an iperf3 TCP transfer between two pods and returns the
	// receiver's throughput in bits per second.
	Iperf(ctx context.Context, from, to Pod, dst netip.Addr, d time.Duration) (float64, error)
	// IperfPaced is Iperf with the sender paced to bitsPerSecond: a
	// continuous TCP load that does not fill the path's queues (a greedy
	// transfer drops what shares them with it, whatever else happens).
	IperfPaced(ctx context.Context, from, to Pod, dst netip.Addr, d time.Duration, bitsPerSecond int) (float64, error)

	// WireGuard returns a node's WireGuard peers as `wg show` sees them.
	WireGuard(ctx context.Context, node string) ([]WGPeer, error)
	// DataPlane renders a node's data-plane state (rules, routes,
	// WireGuard peers without counters, eBPF map entries, nftables) as
	// stable text, for before/after comparisons.
	DataPlane(ctx context.Context, node string) (string, error)

	// StopControllers stops every controller replica; StartControllers
	// starts them again.
	StopControllers(ctx context.Context) error
	StartControllers(ctx context.Context) error
	// Leader returns the index of the leading controller replica.
	Leader(ctx context.Context) (int, error)
	// KillController kills replica i without warning (SIGKILL).
	KillController(ctx context.Context, i int) error
	// LeaseDuration is the controllers' leader lease duration.
	LeaseDuration() time.Duration

	// RestartAgent stops a node's agent (SIGTERM) and starts it again.
	RestartAgent(ctx context.Context, node string) error
	// KillAgent kills a node's agent without warning (SIGKILL) and does
	// not start it again; StartAgent starts it (no-op when it runs) and
	// returns once its data plane is installed.
	KillAgent(ctx context.Context, node string) error
	StartAgent(ctx context.Context, node string) error
	// KeyFiles returns the private key files in a node agent's state
	// directory, by file name (base64 keys, as `wg genkey` writes them).
	KeyFiles(ctx context.Context, node string) (map[string][]byte, error)
	// UninstallAgents stops every agent and removes everything it made
	// (vpblu off); StartAgents starts them again.
	UninstallAgents(ctx context.Context) error
	StartAgents(ctx context.Context) error
	// AddNode adds a node with pods to the running cluster, agent
	// included.
	AddNode(ctx context.Context) (Node, error)
	// RemoveNode stops a node's agent and deletes its Node object.
	RemoveNode(ctx context.Context, node string) error

	// Dashboards returns the URL of each controller replica's web
	// dashboard, and its password.
	Dashboards() (urls []string, password string)
	// KubectlVpblu runs `kubectl vpblu args...` (the plugin, found on PATH
	// by kubectl) against the cluster and returns its combined output; an
	// error means it exited non-zero.
	KubectlVpblu(ctx context.Context, args ...string) (string, error)

	// StreamAddrs are the controllers' stream addresses; CABundle is the
	// CA the agents trust; AgentToken returns a valid token of a node's
	// agent.
	StreamAddrs() []string
	CABundle() []byte
	AgentToken(ctx context.Context, node string) (string, error)
}

// Node is a cluster node.
type Node struct {
	Name string
	IPv4 netip.Addr
	IPv6 netip.Addr
}

// Pod is a workload pod.
type Pod struct {
	Name string
	Node string
	IPv4 netip.Addr
	IPv6 netip.Addr
}

// Addr returns the pod's address of a family ("v4" or "v6").
func (p Pod) Addr(family string) netip.Addr {
	if family == "v6" {
		return p.IPv6
	}
	return p.IPv4
}

// Flow is a running sequence-numbered UDP flow.
type Flow interface {
	// Stop stops sending, waits grace for datagrams in flight and returns
	// the totals.
	Stop(grace time.Duration) FlowStats
	// Stats returns the totals so far.
	Stats() FlowStats
}

// FlowStats counts one direction of a flow.
type FlowStats struct {
	Sent, Received, Lost, Duplicates uint64
	// LongestGap is the longest run of lost datagrams as time.
	LongestGap time.Duration
	// LastReceived is when the last datagram arrived.
	LastReceived time.Time
	// SendErrors counts datagrams the sender's kernel refused (LastSendError
	// says why); ReceiverDrops counts UDP datagrams the receiving pod's
	// namespace dropped for want of socket buffer. Both tell a loss at the
	// ends apart from a loss on the path; both are still losses.
	SendErrors    uint64
	LastSendError string
	ReceiverDrops uint64
	// FirstLost holds the first few lost sequence numbers (0 is the
	// flow's first datagram).
	FirstLost []uint64
}

// Capture is a running underlay capture.
type Capture interface {
	Stop() CaptureStats
	Stats() CaptureStats
}

// CaptureStats classifies what crossed the underlay.
type CaptureStats struct {
	// Cleartext counts packets with a pod address as source or
	// destination: unencrypted pod traffic.
	Cleartext int
	// WireGuard counts UDP packets to or from WireGuard ports.
	WireGuard int
	Other     int
	Samples   []string
}

// WGPeer is one peer of a node's WireGuard interface.
type WGPeer struct {
	PublicKey     string
	Endpoint      string
	AllowedIPs    []string
	LastHandshake time.Time
	RxBytes       uint64
	TxBytes       uint64
}
