package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// CronSchedule is a five-field cron schedule (minute hour day-of-month month
// day-of-week, in UTC) such as "0 3 * * 0", or one of @hourly, @daily,
// @weekly, @monthly, @yearly.
// +kubebuilder:validation:MaxLength=256
// +kubebuilder:validation:Pattern=`^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\*|[0-5]?[0-9](-[0-5]?[0-9])?)(/[1-9][0-9]?)?(,(\*|[0-5]?[0-9](-[0-5]?[0-9])?)(/[1-9][0-9]?)?)* +(\*|([01]?[0-9]|2[0-3])(-([01]?[0-9]|2[0-3]))?)(/[1-9][0-9]?)?(,(\*|([01]?[0-9]|2[0-3])(-([01]?[0-9]|2[0-3]))?)(/[1-9][0-9]?)?)* +(\*|(0?[1-9]|[12][0-9]|3[01])(-(0?[1-9]|[12][0-9]|3[01]))?)(/[1-9][0-9]?)?(,(\*|(0?[1-9]|[12][0-9]|3[01])(-(0?[1-9]|[12][0-9]|3[01]))?)(/[1-9][0-9]?)?)* +(\*|(0?[1-9]|1[0-2]|(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec))(-(0?[1-9]|1[0-2]|(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)))?)(/[1-9][0-9]?)?(,(\*|(0?[1-9]|1[0-2]|(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec))(-(0?[1-9]|1[0-2]|(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)))?)(/[1-9][0-9]?)?)* +(\*|([0-6]|(?i:sun|mon|tue|wed|thu|fri|sat))(-([0-6]|(?i:sun|mon|tue|wed|thu|fri|sat)))?)(/[1-9][0-9]?)?(,(\*|([0-6]|(?i:sun|mon|tue|wed|thu|fri|sat))(-([0-6]|(?i:sun|mon|tue|wed|thu|fri|sat)))?)(/[1-9][0-9]?)?)*)$`
type CronSchedule string

// RotationPolicySpec says when and how node keys are rotated.
type RotationPolicySpec struct {
	// Schedule is when a rotation round starts. A round rotates every
	// selected node, one node at a time across the cluster.
	Schedule CronSchedule `json:"schedule"`
	// OverlapWindow is how long a node's old and new keys are both valid
	// while peers switch over. A phase that has not completed within it
	// rolls the node's rotation back.
	// +optional
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="overlapWindow must be a positive duration such as 30s or 2m"
	OverlapWindow metav1.Duration `json:"overlapWindow,omitempty"`
	// NodeSelector chooses the nodes whose keys this policy rotates. Empty
	// selects every node.
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`
	// Suspend stops new rounds from starting; a rotation in progress
	// finishes.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// NodeRotation is one node's progress in the current or last round.
type NodeRotation struct {
	Node string `json:"node"`
	// Phase is where the node stands (Idle when done or not started).
	Phase RotationPhase `json:"phase"`
	// KeyGeneration is the node's key generation after its last rotation.
	// +optional
	KeyGeneration int64 `json:"keyGeneration,omitempty"`
	// LastRotated is when the node's last rotation completed.
	// +optional
	LastRotated *metav1.Time `json:"lastRotated,omitempty"`
	// Message explains the last failure or rollback, if any.
	// +optional
	Message string `json:"message,omitempty"`
}

// RotationPolicyStatus reports the rotation rounds.
type RotationPolicyStatus struct {
	// ObservedGeneration is the metadata.generation last acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// LastRun is when the last round started.
	// +optional
	LastRun *metav1.Time `json:"lastRun,omitempty"`
	// NextRun is when the next round is due.
	// +optional
	NextRun *metav1.Time `json:"nextRun,omitempty"`
	// CurrentNode is the node being rotated now, if any.
	// +optional
	CurrentNode string `json:"currentNode,omitempty"`
	// Phase is CurrentNode's phase.
	// +optional
	Phase RotationPhase `json:"phase,omitempty"`
	// Nodes is per-node progress.
	// +optional
	// +listType=map
	// +listMapKey=node
	Nodes []NodeRotation `json:"nodes,omitempty"`
	// Conditions: Ready, Valid, Rotating.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// RotationPolicy rotates node WireGuard keys on a schedule without
// dropping packets (see docs/rotation.md). A single node can also be rotated
// on demand with the vpblu.io/rotate annotation on its VpbluNode.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=rotp,categories=vpblu
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Schedule",type=string,JSONPath=`.spec.schedule`
// +kubebuilder:printcolumn:name="Overlap",type=string,JSONPath=`.spec.overlapWindow`
// +kubebuilder:printcolumn:name="Last Run",type=date,JSONPath=`.status.lastRun`
// +kubebuilder:printcolumn:name="Next Run",type=string,JSONPath=`.status.nextRun`
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.status.currentNode`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Suspend",type=boolean,JSONPath=`.spec.suspend`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type RotationPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec RotationPolicySpec `json:"spec"`
	// +optional
	Status RotationPolicyStatus `json:"status,omitempty"`
}

// RotationPolicyList is a list of RotationPolicies.
// +kubebuilder:object:root=true
type RotationPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RotationPolicy `json:"items"`
}
