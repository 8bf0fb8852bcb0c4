package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// PolicyStatus is the status every policy kind shares: which generation the
// controller has seen and how many of the nodes it concerns applied it.
type PolicyStatus struct {
	// ObservedGeneration is the metadata.generation the controller last
	// computed desired state from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Nodes counts the nodes this policy concerns.
	// +optional
	Nodes int32 `json:"nodes,omitempty"`
	// NodesApplied counts those whose daemon acknowledged a state that
	// includes ObservedGeneration.
	// +optional
	NodesApplied int32 `json:"nodesApplied,omitempty"`
	// Conditions: Ready, Conflict, Valid.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}
