// Package rotation drives zero-downtime WireGuard key rotations (SPEC §11,
// docs/rotation.md) from the controller: which node rotates when (the
// RotationPolicy cron rounds, the vpblu.io/rotate annotation), one node at
// a time across the cluster, and how its rotation moves through Prepare,
// Distribute, Activate (SwitchToTemp, Rekey, SwitchBack) and Retire, or
// rolls back (RollbackSwitchToTemp, RollbackRestore, RollbackSwitchBack,
// RollbackTeardown) when a step fails, times out or the peer set changes.
//
// Machine is pure: no I/O, no clock. It takes Events (the observed world,
// time passing, key reports, step acks and handshake confirmations from
// RotationReports, daemon (dis)connections) with the time they happen at,
// and returns an Output: status patches to persist, key commits to feed
// to the desired state, RotationCommands to send, Kubernetes Events, stage
// transitions for metrics, and when to call it again. The caller must
// persist Output.Nodes (and Policies) before it sends Output.Commands:
// the API then always says at least as much as any daemon was told, which
// is what a new leader resumes from (a new Machine adopts the rotation the
// VpbluNode statuses show on its first Observe).
//
// It does not talk to the API server or the daemons, and does not compute
// desired state: the caller wires it to the informers, the stream server
// and core/desired (see docs/rotation.md, "Wiring").
package rotation
