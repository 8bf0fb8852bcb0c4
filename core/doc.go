// Package core is what the controller and the daemon share: the API types
// (core/api/v1alpha1), the stream protocol (core/meshpb), the pure
// desired-state computation (core/desired) and CIDR helpers.
//
// Nothing under core imports another vpblu package or does I/O beyond what
// generated code needs; it is the bottom of the dependency graph.
package core
