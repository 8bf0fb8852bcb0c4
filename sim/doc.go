// Package sim builds a whole vpblu cluster on one machine out of network
// namespaces: an underlay bridge, node namespaces with a simple base CNI,
// pods, the real API server, the real controller and one real daemon per
// node. It implements the e2e Cluster interface.
package sim
