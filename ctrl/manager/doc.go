// Package manager wires the controller together: the CA and serving
// certificate, the stream server (on every replica), Lease-based leader
// election with the generation epoch read from the Lease, and the
// leader-only parts (loader, desired-state feed, VpbluNode lifecycle,
// status writers, and the key rotations: one ctrl/rotation.Machine per
// leadership term, fed by the informers, the desired state and the
// daemons' reports, whose output is persisted before its commands are
// sent), all on one controller-runtime manager with health probes and
// metrics.
//
// It holds no logic of its own beyond wiring; cmd/vpblu-controller parses
// flags into Options and calls Run.
package manager
