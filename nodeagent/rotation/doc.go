// Package rotation carries out, on one node, the daemon's part of a
// zero-downtime key rotation (SPEC §11, docs/rotation.md): the node being
// rotated (the subject) and each of its peers bring up the temporary
// interface wg-rot, move the pair's traffic onto it, re-key wg-mesh, move
// the traffic back and tear wg-rot down.
//
// It has three layers:
//
//   - Overlay is what a rotation lays over the node's desired state: the
//     temporary interface and its peers, which peers' traffic is steered
//     into it, which key wg-mesh runs (subject) or gives the subject
//     (peer), and key supersessions left by finished rotations. Compose
//     is the pure function the agent calls in every reconcile to lay an
//     Overlay over the configurations it derived from the desired state
//     (wg-mesh, wg-rot, route paths, BPF remotes), so a SyncState never
//     undoes a rotation in progress.
//   - Plan is pure: from the node's current Overlay and key slots and a
//     RotationCommand it returns the ordered Steps that reach the state
//     the command names. Every command names a state, not a change, so a
//     command sent again (after a daemon restart, a lost ack or a leader
//     change) plans nothing new.
//   - Executor runs Steps against small interfaces: Keys (*keys.Store),
//     Host (the agent: reconcile with an Overlay), Tunnels (*wg.Manager,
//     to delete wg-rot and read handshakes) and Journal (the Overlay on
//     disk, written before each step acts, so a restarted daemon applies
//     the same Overlay in its first reconcile).
//
// It never talks to the controller and never logs: the agent sends the
// RotationReports and KeyReports the Executor returns. It does not decide
// when to rotate (ctrl/rotation does) and does not touch wg-mesh, routes
// or BPF maps itself: the agent does, from Compose's output.
package rotation
