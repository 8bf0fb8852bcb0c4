// Package generation numbers the controller's commands to daemons: a
// Generation is (epoch, seq), compared epoch first. The epoch comes from the
// leader Lease's transition count when leadership is won, so generations only
// grow across failovers; seq grows with every change of desired state.
//
// It is not the desired state and not the stream: it only orders them.
package generation
