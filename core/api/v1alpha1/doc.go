// Package v1alpha1 holds the vpblu custom resources (group vpblu.io): the
// per-node VpbluNode and the four policies that shape the mesh
// (TunnelPolicy, RoutePolicy, BlockPolicy, RotationPolicy).
//
// The Go doc comments here become the CRD documentation that
// `kubectl explain` shows, and the markers become the validation the API
// server enforces at admission. This package holds types only: what the
// policies mean is computed in core/desired.
//
// +kubebuilder:object:generate=true
// +groupName=vpblu.io
package v1alpha1
