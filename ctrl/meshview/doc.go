// Package meshview is what an operator sees of the mesh (SPEC §15): one
// read of the cluster with one List per kind, the mesh the controller
// wants recomputed from the same inputs (ctrl/reconcile, core/desired),
// set beside what every daemon reported in its VpbluNode status.
//
// Load is the only I/O; Verify, WriteStatus and WriteDOT are pure. The
// kubectl plugin, meshtop and the dashboard all render a Mesh.
package meshview
