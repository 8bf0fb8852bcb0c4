package v1alpha1

// CIDR is an IPv4 or IPv6 prefix in canonical or host form, such as
// "100.64.1.0/24" or "2001:db8:1::/64".
// +kubebuilder:validation:MaxLength=49
// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="must be an IPv4 or IPv6 CIDR such as 100.64.0.0/10 or 2001:db8::/32"
type CIDR string

// NodeName is the name of a Kubernetes Node.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=253
// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
type NodeName string

// Condition types used across vpblu resources.
const (
	// ConditionReady is True when the object is fully in force: for a node,
	// its daemon is connected and applied the latest state; for a policy,
	// every selected node applied its current generation.
	ConditionReady = "Ready"
	// ConditionConflict is True when the object conflicts with another one
	// (for example two policies claim the same CIDR). The message names the
	// other object and which claim won.
	ConditionConflict = "Conflict"
	// ConditionValid is False when the object passed admission but cannot be
	// applied as written (for example a RoutePolicy whose every via
	// candidate is drained).
	ConditionValid = "Valid"
	// ConditionConnected is True while a node's daemon holds a stream to the
	// leading controller.
	ConditionConnected = "Connected"
	// ConditionIsolated is True while a BlockPolicy isolates the node.
	ConditionIsolated = "Isolated"
	// ConditionCapacity is False when the node's data plane maps are full and
	// the daemon kept its last complete state instead of applying a new one.
	ConditionCapacity = "MapCapacity"
	// ConditionRotating is True while a key rotation is in progress.
	ConditionRotating = "Rotating"
)

// Annotations read by the controller.
const (
	// AnnotationRotate on a VpbluNode asks for an on-demand key rotation of
	// that node. Any new value (for example a timestamp) requests one more
	// rotation; the controller records the last value it acted on in
	// status.lastRotateRequest.
	AnnotationRotate = "vpblu.io/rotate"
)

// DefaultListenPort is the UDP port WireGuard listens on unless a
// TunnelPolicy says otherwise.
const DefaultListenPort = 51820
