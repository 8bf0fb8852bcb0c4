// Package metrics defines the controller's Prometheus metrics (SPEC §15):
// connected daemons, push latency, send queue depth, resyncs, refused
// streams, acks, leader state and key rotations (stage, outcomes,
// durations). The binary registers them on controller-runtime's registry
// so they are served with its own.
//
// It only defines and registers collectors; the packages that observe
// events update them.
package metrics
