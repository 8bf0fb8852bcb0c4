package desired

import (
	"net/netip"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
)

// Node is what the desired state needs to know about one Kubernetes Node
// and its VpbluNode. The controller fills it from the Node, the VpbluNode
// and the node's pods.
type Node struct {
	// Name is the Node's name; it must not be empty.
	Name string
	// Labels are the Node's labels, matched by policy selectors.
	Labels map[string]string
	// InternalIPs are the Node's InternalIP addresses in the order the
	// Node lists them. Peers reach the node at the first IPv4 one (the
	// first IPv6 one if there is no IPv4), unless Endpoint says otherwise.
	InternalIPs []netip.Addr
	// Endpoint is the VpbluNode's spec.endpoint override, if any.
	Endpoint *EndpointOverride
	// PodCIDRs are the Node's spec.podCIDRs.
	PodCIDRs []netip.Prefix
	// PodIPs are the IPs of the node's pods that are not hostNetwork. They
	// are used, as /32 and /128, only when PodCIDRs is empty.
	PodIPs []netip.Addr
	// PublicKey is the node's active public key (VpbluNode
	// status.publicKey); zero while the daemon has not reported one. A node
	// without a key is not a peer.
	PublicKey Key
	// KeyGeneration is VpbluNode status.keyGeneration.
	KeyGeneration int64
	// QuarantineKeyGeneration is VpbluNode
	// status.quarantineKeyGeneration: the key generation the node had when
	// it was isolated. After the isolation is lifted the node stays out of
	// the mesh until KeyGeneration exceeds it.
	QuarantineKeyGeneration int64
}

// EndpointOverride is where peers reach a node instead of its InternalIP.
type EndpointOverride struct {
	Addr netip.Addr
	// Port is the UDP port; 0 means the node's listen port.
	Port uint16
}

// Policies are every vpblu policy object of the cluster. Order does not
// matter: precedence between objects of one kind is by age
// (creationTimestamp, then name).
type Policies struct {
	Tunnel []v1alpha1.TunnelPolicy
	Route  []v1alpha1.RoutePolicy
	Block  []v1alpha1.BlockPolicy
	// RotationPolicies are not an input: nothing in the desired state
	// depends on them (rotation is driven by ctrl/rotation, and its only
	// effect here is a node's KeyGeneration).
}

// Snapshot is the whole input of Compute.
type Snapshot struct {
	Nodes    []Node
	Policies Policies
	// ClusterCIDRs are configured cluster pod CIDRs (the controller's
	// --cluster-cidr); they are added to the pod CIDRs of the nodes to form
	// every node's cluster CIDRs, so strict nodes also drop traffic to pod
	// CIDRs of nodes not known yet.
	ClusterCIDRs []netip.Prefix
}
