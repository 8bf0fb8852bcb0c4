// Package status writes what the controller knows back to the API: each
// VpbluNode's status from what its daemon reports and what the desired
// state says about it, each policy's status (observed generation, nodes
// concerned and applied, Conflict and Valid conditions from core/desired),
// and Events for conflicts and refused streams. Writes are coalesced per
// object and rate limited, so thousands of nodes do not hammer the API
// server.
//
// The status values are computed by pure functions (NodeStatus,
// PolicyStatus); the writers only decide when to write them.
package status
