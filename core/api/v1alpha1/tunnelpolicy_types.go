package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// TunnelMode says which nodes peer with which.
// +kubebuilder:validation:Enum=FullMesh;Explicit
type TunnelMode string

const (
	// FullMesh peers every selected node with every other selected node.
	FullMesh TunnelMode = "FullMesh"
	// Explicit peers only the listed pairs and the members of each group.
	Explicit TunnelMode = "Explicit"
)

// NodePair is two nodes that peer with each other.
// +kubebuilder:validation:XValidation:rule="self.a != self.b",message="a node cannot peer with itself: a and b must differ"
type NodePair struct {
	A NodeName `json:"a"`
	B NodeName `json:"b"`
}

// PeerGroup is a set of nodes, chosen by labels, that all peer with each
// other.
type PeerGroup struct {
	// Name identifies the group in status and events.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// Selector chooses the group's members among the policy's nodes.
	Selector metav1.LabelSelector `json:"selector"`
}

// TunnelPolicySpec says which nodes get WireGuard tunnels to which.
// +kubebuilder:validation:XValidation:rule="self.mode != 'Explicit' || (has(self.pairs) && size(self.pairs) > 0) || (has(self.groups) && size(self.groups) > 0)",message="mode Explicit needs at least one entry in pairs or groups"
// +kubebuilder:validation:XValidation:rule="self.mode != 'FullMesh' || (!has(self.pairs) && !has(self.groups))",message="mode FullMesh peers every selected node: pairs and groups must be empty"
type TunnelPolicySpec struct {
	// Mode is FullMesh (every selected node peers every other) or Explicit
	// (only pairs and groups).
	Mode TunnelMode `json:"mode"`
	// NodeSelector chooses the nodes this policy applies to. Empty selects
	// every node.
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`
	// Pairs lists node pairs that peer (Explicit mode only).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=10000
	Pairs []NodePair `json:"pairs,omitempty"`
	// Groups lists label-selected groups whose members all peer with each
	// other (Explicit mode only).
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=256
	Groups []PeerGroup `json:"groups,omitempty"`
	// ListenPort is the UDP port of wg-mesh on every selected node. During a
	// key rotation the next port up (ListenPort+1) is used for a temporary
	// interface, so it must be free too.
	// +optional
	// +kubebuilder:default=51820
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65534
	ListenPort int32 `json:"listenPort,omitempty"`
	// PersistentKeepaliveSeconds makes each peer send a keepalive at this
	// interval so NAT and firewall state stays open. 0 turns it off.
	// +optional
	// +kubebuilder:default=25
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	PersistentKeepaliveSeconds *int32 `json:"persistentKeepaliveSeconds,omitempty"`
	// Strict drops cross-node pod traffic that cannot go through a tunnel
	// instead of sending it in cleartext. If any policy selecting a node is
	// strict, the node is strict.
	// +optional
	// +kubebuilder:default=true
	Strict *bool `json:"strict,omitempty"`
}

// TunnelPolicy says which nodes get WireGuard tunnels to which, on which
// port, and whether traffic that has no tunnel is dropped (strict, the
// default) or passed in cleartext.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=tp,categories=vpblu
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`
// +kubebuilder:printcolumn:name="Port",type=integer,JSONPath=`.spec.listenPort`
// +kubebuilder:printcolumn:name="Strict",type=boolean,JSONPath=`.spec.strict`
// +kubebuilder:printcolumn:name="Nodes",type=integer,JSONPath=`.status.nodes`
// +kubebuilder:printcolumn:name="Applied",type=integer,JSONPath=`.status.nodesApplied`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Keepalive",type=integer,JSONPath=`.spec.persistentKeepaliveSeconds`,priority=1
// +kubebuilder:printcolumn:name="Conflict",type=string,JSONPath=`.status.conditions[?(@.type=="Conflict")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type TunnelPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec TunnelPolicySpec `json:"spec"`
	// +optional
	Status PolicyStatus `json:"status,omitempty"`
}

// TunnelPolicyList is a list of TunnelPolicies.
// +kubebuilder:object:root=true
type TunnelPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TunnelPolicy `json:"items"`
}
