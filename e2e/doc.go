// Package e2e holds the acceptance criteria of SPEC §12 as Go tests written
// once against a small Cluster interface, so the simulator (sim), the VM
// runner (vm) and a kind runner all run the same suite.
package e2e
