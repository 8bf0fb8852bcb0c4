package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// WireGuardBackend names the WireGuard implementation a node runs.
// +kubebuilder:validation:Enum=kernel;userspace
type WireGuardBackend string

const (
	// BackendKernel is the in-kernel WireGuard module, configured over netlink.
	BackendKernel WireGuardBackend = "kernel"
	// BackendUserspace is wireguard-go on a TUN device, used when the kernel
	// has no WireGuard.
	BackendUserspace WireGuardBackend = "userspace"
)

// RotationPhase is where a node stands in a key rotation (see
// docs/rotation.md). Idle means no rotation is in progress.
// +kubebuilder:validation:Enum=Idle;Prepare;Distribute;Activate;Retire;RollingBack
type RotationPhase string

const (
	RotationIdle        RotationPhase = "Idle"
	RotationPrepare     RotationPhase = "Prepare"
	RotationDistribute  RotationPhase = "Distribute"
	RotationActivate    RotationPhase = "Activate"
	RotationRetire      RotationPhase = "Retire"
	RotationRollingBack RotationPhase = "RollingBack"
)

// Endpoint is a UDP address where peers reach a node's WireGuard interface.
type Endpoint struct {
	// Address is an IPv4 or IPv6 address (no port).
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="must be an IPv4 or IPv6 address"
	Address string `json:"address"`
	// Port is the UDP port. Defaults to the listen port of the node's
	// TunnelPolicy.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port *int32 `json:"port,omitempty"`
}

// VpbluNodeSpec is what an operator may set on a node.
type VpbluNodeSpec struct {
	// Endpoint overrides the address peers use to reach this node. By
	// default peers use the Node's InternalIP and the listen port.
	// +optional
	Endpoint *Endpoint `json:"endpoint,omitempty"`
}

// VpbluNodeStatus is what the controller last heard from the node's daemon.
// It never holds a private key.
type VpbluNodeStatus struct {
	// PublicKey is the node's active WireGuard public key, base64.
	// +optional
	PublicKey string `json:"publicKey,omitempty"`
	// KeyGeneration counts the node's keys: 1 for the first, one more after
	// each completed rotation.
	// +optional
	KeyGeneration int64 `json:"keyGeneration,omitempty"`
	// KeyCreated is when the active key was generated on the node.
	// +optional
	KeyCreated *metav1.Time `json:"keyCreated,omitempty"`
	// PendingPublicKey is the key staged by a rotation in progress.
	// +optional
	PendingPublicKey string `json:"pendingPublicKey,omitempty"`
	// RotationPhase is where the node stands in a key rotation.
	// +optional
	RotationPhase RotationPhase `json:"rotationPhase,omitempty"`
	// QuarantineKeyGeneration is set when a BlockPolicy isolates the node:
	// the key generation it had then. After the isolation is lifted the
	// node peers again only once its key generation exceeds this (a
	// rotation gives it a key that was never exposed while quarantined).
	// +optional
	QuarantineKeyGeneration int64 `json:"quarantineKeyGeneration,omitempty"`
	// LastRotateRequest is the last value of the vpblu.io/rotate annotation
	// the controller acted on.
	// +optional
	LastRotateRequest string `json:"lastRotateRequest,omitempty"`
	// Backend is the WireGuard implementation the daemon runs.
	// +optional
	Backend WireGuardBackend `json:"backend,omitempty"`
	// Endpoint is the address peers use to reach this node, "ip:port".
	// +optional
	Endpoint string `json:"endpoint,omitempty"`
	// PodCIDRs are the pod CIDRs routed to this node through the mesh.
	// +optional
	// +listType=atomic
	PodCIDRs []string `json:"podCIDRs,omitempty"`
	// MTU of the node's wg-mesh interface.
	// +optional
	MTU int32 `json:"mtu,omitempty"`
	// PeersUp counts peers with a WireGuard handshake in the last 3 minutes.
	// +optional
	PeersUp int32 `json:"peersUp,omitempty"`
	// PeersTotal counts the peers the node should have.
	// +optional
	PeersTotal int32 `json:"peersTotal,omitempty"`
	// AppliedGeneration is the last state generation the daemon applied,
	// "epoch.sequence".
	// +optional
	AppliedGeneration string `json:"appliedGeneration,omitempty"`
	// LastSeen is when the daemon last reported.
	// +optional
	LastSeen *metav1.Time `json:"lastSeen,omitempty"`
	// Conditions: Ready, Connected, Isolated, MapCapacity, Rotating.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// VpbluNode is vpblu's view of one Kubernetes Node: how peers reach it, its
// public key and how its daemon is doing. The controller creates one per
// Node (same name) and deletes it with the Node.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=vn,categories=vpblu
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.status.endpoint`
// +kubebuilder:printcolumn:name="Backend",type=string,JSONPath=`.status.backend`
// +kubebuilder:printcolumn:name="Peers Up",type=integer,JSONPath=`.status.peersUp`
// +kubebuilder:printcolumn:name="Peers",type=integer,JSONPath=`.status.peersTotal`
// +kubebuilder:printcolumn:name="Key Gen",type=integer,JSONPath=`.status.keyGeneration`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.rotationPhase`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Public Key",type=string,JSONPath=`.status.publicKey`,priority=1
// +kubebuilder:printcolumn:name="MTU",type=integer,JSONPath=`.status.mtu`,priority=1
// +kubebuilder:printcolumn:name="Last Seen",type=date,JSONPath=`.status.lastSeen`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type VpbluNode struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec VpbluNodeSpec `json:"spec,omitempty"`
	// +optional
	Status VpbluNodeStatus `json:"status,omitempty"`
}

// VpbluNodeList is a list of VpbluNodes.
// +kubebuilder:object:root=true
type VpbluNodeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []VpbluNode `json:"items"`
}
