// Package status writes what the controller knows back to the API: each
// VpbluNode's status from what its daemon reports and what the desired
// state says about it, each policy's status (observed generation, nodes
// concerned and applied, Conflict and Valid conditions from core/desired),
// and Events for conflicts and refused streams. Writes are coalesced per
// object and rate limited, so thousands of nodes do not hammer the API
// server. Rotation persists the key rotation machine's patches at once
// (a rotation's stage must be in the API before its commands are sent);
// the VpbluNode writer leaves the fields a rotation in progress owns
// alone and patches with an optimistic lock, so it never writes back an
// older rotation status it read from the cache.
//
// The status values are computed by pure functions (NodeStatus,
// PolicyStatus); the writers only decide when to write them.
package status
