// Package ctrl is the vpblu controller: informers on the vpblu resources,
// Nodes and Pods; the desired-state fan-out to daemons over authenticated
// gRPC streams; key rotation; leader election; status, events and metrics.
//
// It decides nothing itself: what each node should run is computed by
// core/desired. It never imports nodeagent.
package ctrl
