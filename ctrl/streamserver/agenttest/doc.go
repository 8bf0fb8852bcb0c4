// Package agenttest is a fake daemon for controller tests: it speaks the
// real protocol (core/meshpb) over real gRPC and TLS with a bearer token,
// applies SyncStates and Deltas by the protocol's rules (stale and gap
// checks), acks them, reconnects to the next controller address when a
// stream ends, and renders what it runs as text.
//
// It configures nothing on the host; it is not the real daemon
// (nodeagent/stream is).
package agenttest
