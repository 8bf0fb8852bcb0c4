package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// RoutePolicySpec makes extra CIDRs reachable through one node's tunnel.
type RoutePolicySpec struct {
	// CIDRs are reached through the chosen via node. A CIDR here overrides a
	// node's derived pod CIDR that it equals or contains.
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=1024
	CIDRs []CIDR `json:"cidrs"`
	// Via lists candidate nodes in order of preference. The first one that
	// has a key, is in the mesh, and is neither drained nor isolated carries
	// the traffic; the next takes over when it stops qualifying.
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	Via []NodeName `json:"via"`
}

// RoutePolicyStatus adds the chosen via node to the common policy status.
type RoutePolicyStatus struct {
	PolicyStatus `json:",inline"`
	// ActiveVia is the candidate currently carrying the traffic; empty when
	// none qualifies.
	// +optional
	ActiveVia string `json:"activeVia,omitempty"`
}

// RoutePolicy makes extra CIDRs (for example a subnet behind a gateway
// node) reachable through a node's tunnel, with ordered failover between
// candidate nodes.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=rp,categories=vpblu
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="CIDRs",type=string,JSONPath=`.spec.cidrs`
// +kubebuilder:printcolumn:name="Active Via",type=string,JSONPath=`.status.activeVia`
// +kubebuilder:printcolumn:name="Applied",type=integer,JSONPath=`.status.nodesApplied`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Via",type=string,JSONPath=`.spec.via`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type RoutePolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec RoutePolicySpec `json:"spec"`
	// +optional
	Status RoutePolicyStatus `json:"status,omitempty"`
}

// RoutePolicyList is a list of RoutePolicies.
// +kubebuilder:object:root=true
type RoutePolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RoutePolicy `json:"items"`
}
