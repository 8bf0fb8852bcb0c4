// Package clustertest builds clusters for controller tests on a real API
// server (tools/testenv): Nodes with addresses in 198.18.0.0/15 and pod
// CIDRs in 100.64.0.0/10, the agents' ServiceAccount, pods bound to the
// nodes and their real tokens, and fake daemons (agenttest) that trust the
// CA bundle the controller publishes, as real daemons mount it.
//
// It is for tests and benchmarks only.
package clustertest
