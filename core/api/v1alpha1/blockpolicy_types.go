package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// BlockRule drops every packet whose source is in one of From and whose
// destination is in one of To. IPv4 and IPv6 CIDRs may be mixed; a rule
// only matches packets of the family of its CIDRs.
type BlockRule struct {
	// From lists source CIDRs.
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	From []CIDR `json:"from"`
	// To lists destination CIDRs.
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	To []CIDR `json:"to"`
}

// BlockPolicySpec drops traffic and takes nodes out of service. It has the
// highest precedence of all policies.
// +kubebuilder:validation:XValidation:rule="(has(self.rules) && size(self.rules) > 0) || (has(self.isolate) && size(self.isolate) > 0) || (has(self.drain) && size(self.drain) > 0)",message="a BlockPolicy needs at least one of rules, isolate or drain"
type BlockPolicySpec struct {
	// Rules are CIDR to CIDR drops, enforced by the sending and the
	// receiving node.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=1024
	Rules []BlockRule `json:"rules,omitempty"`
	// Isolate quarantines nodes: every node drops traffic to and from their
	// pod CIDRs and removes them as peers. Lifting an isolation requires a
	// key rotation of the node before it peers again.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=1024
	Isolate []NodeName `json:"isolate,omitempty"`
	// Drain stops nodes from serving as via for RoutePolicy routes; the
	// next candidate takes over. Their own pods stay reachable.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=1024
	Drain []NodeName `json:"drain,omitempty"`
}

// BlockPolicy drops CIDR to CIDR traffic, isolates nodes and drains them
// from routing. It overrides every other policy.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=bp,categories=vpblu
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Isolate",type=string,JSONPath=`.spec.isolate`
// +kubebuilder:printcolumn:name="Drain",type=string,JSONPath=`.spec.drain`
// +kubebuilder:printcolumn:name="Applied",type=integer,JSONPath=`.status.nodesApplied`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BlockPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec BlockPolicySpec `json:"spec"`
	// +optional
	Status PolicyStatus `json:"status,omitempty"`
}

// BlockPolicyList is a list of BlockPolicies.
// +kubebuilder:object:root=true
type BlockPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BlockPolicy `json:"items"`
}
