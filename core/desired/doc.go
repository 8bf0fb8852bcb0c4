// Package desired computes, from a snapshot of the cluster (nodes, keys,
// policies), the state every node's daemon must make true, and the deltas
// between two such states (SPEC §5). It is pure: no I/O, no clock, no
// Kubernetes client. The controller feeds it from informers and sends its
// output through core/wire; the daemon keeps one NodeState and Applies the
// deltas it receives. It does not compile block rules into BPF tables
// (core/blocks does) and does not drive key rotation (ctrl/rotation does).
//
// # Entry points
//
// Compute(Snapshot) returns every node's NodeState at once. An Engine
// holds the inputs and results and takes changes one at a time
// (UpsertNode, RemoveNode, SetPolicies), each returning the per-node
// Deltas; its states always equal Compute of the same inputs. Diff(old,
// new) and Apply(state, delta) relate any two states:
// Apply(old, Diff(old, new)) equals new.
//
// # What a node gets
//
// A NodeState has a Config (listen port, keepalive, strict, isolated, its
// own pod CIDRs), the cluster CIDRs, its peers (name, public key,
// endpoint, allowed IPs, keepalive), and block rules. Routes (remote CIDR
// → peer) are derived from the peers: one per allowed IP (NodeState.Routes).
//
// A node's pod CIDRs are its Node's spec.podCIDRs; a node with none uses
// the IPs of its (non-hostNetwork) pods, as /32 and /128. The cluster
// CIDRs are the pod CIDRs of every node, isolated and keyless ones
// included, plus the configured Snapshot.ClusterCIDRs; a strict node drops
// traffic to them that no route covers.
//
// # Precedence
//
// BlockPolicy > RoutePolicy > TunnelPolicy > derived from the Node. Between
// two objects of one kind, the older wins: earlier creationTimestamp, then
// name (as the Gateway API resolves conflicting routes).
//
// TunnelPolicy. A node selected by no TunnelPolicy is not in the mesh: no
// peers, not a peer of anyone, listen port 51820, keepalive 0, not strict
// (vpblu leaves its traffic alone; strict nodes still drop their traffic
// to it, fail closed). A node selected by several gets the listen port and
// keepalive of the oldest; each other selecting policy that disagrees is
// reported once as a conflict (ErrConflict on it, naming the winner and
// how many nodes). It is strict if any selecting policy is strict. Unset
// fields take the CRD defaults: port 51820, keepalive 25, strict true.
// Peering is the union over selecting policies: FullMesh peers every
// selected node with every other; Explicit peers the members of each group
// (group selector within the policy's node selector) with each other, and
// each pair whose two nodes the policy selects.
//
// Membership. A node is a peer of anyone ("member") only if a TunnelPolicy
// selects it, it has a public key, no BlockPolicy isolates it, and it is
// not awaiting a key rotation after an isolation. A node that is not a
// member has no peers either, so peering is always symmetric.
//
// Isolate (BlockPolicy). The node leaves every peer list and gets no
// peers; Config.Isolated is set; every node, the isolated one included,
// gets block rules from each of its pod CIDRs to everything of that family
// (0.0.0.0/0 or ::/0) and from everything to it. Isolation is remembered:
// after it is lifted the blocks go, but the node stays out of the mesh
// (Config.Isolated stays set, NodeStatus.QuarantinePending) until its
// KeyGeneration exceeds its QuarantineKeyGeneration, which the controller
// records when it isolates the node.
//
// Drain (BlockPolicy). The node stops serving as via for RoutePolicies;
// the next qualifying candidate takes over. Nothing else changes: it stays
// a peer and its own pod CIDRs stay reachable.
//
// Block rules. Every From×To pair of one family becomes a rule on every
// node (a pair of two families matches nothing and is skipped; a rule
// with no pair of one family is reported invalid). Rules are deduplicated
// and sorted; they apply before any route.
//
// RoutePolicy. Its CIDRs are carried by its active via: the first
// candidate, in order, that exists, is a member and is not drained. With
// none, its CIDRs are not routed and ErrNoVia says why for each
// candidate; the pod CIDRs it would override stay with their nodes.
//
// # Allowed IPs
//
// Every member's peer entry gets allowed IPs from two kinds of claims:
// its pod CIDRs, and the CIDRs of RoutePolicies it is the active via of.
// Across one node's peers allowed IPs never overlap; claims are resolved
// as follows, deterministically:
//
//  1. A RoutePolicy CIDR overrides every pod CIDR it equals or contains:
//     that pod CIDR is not claimed (not a conflict: this is the
//     documented precedence). Note that a route for 0.0.0.0/0 therefore
//     takes every IPv4 pod CIDR out of direct node-to-node paths.
//  2. Among the remaining claims the longest prefix wins: a claim strictly
//     inside another of a different owner takes those addresses, and the
//     outer claim keeps the rest, split into the fewest prefixes. This is
//     a conflict when the outer claim is a pod CIDR (a RoutePolicy CIDR
//     strictly inside another node's pod CIDR: reported on the
//     RoutePolicy; two nodes' nested pod CIDRs: reported on the inner
//     node). A RoutePolicy CIDR inside another RoutePolicy's is not a
//     conflict: it is an ordinary more-specific route.
//  3. Equal prefixes: a RoutePolicy claim beats the node's own pod CIDR
//     (rule 1); between two RoutePolicies the older wins (conflict on the
//     newer, even when both name the same via); between two nodes the one
//     whose name sorts first wins (conflict on the other).
//  4. A claim inside another of the same owner adds nothing; the same
//     prefix twice on one node counts once.
//
// # Problems
//
// Problems come back as *PolicyError values (never a panic, never a
// silently dropped policy), sorted, each wrapping ErrConflict, ErrInvalid,
// ErrUnknownNode or ErrNoVia, naming the object to report it on, the other
// party of a conflict, and the spec field. ConditionType says which status
// condition it belongs in. An invalid part is left out and the rest
// applies: a bad CIDR leaves out that CIDR; a bad group selector or pair
// leaves out that group or pair; a bad node selector, listen port,
// keepalive or mode leaves out the whole TunnelPolicy. Names of nodes that
// do not exist (pairs, via, isolate, drain) are reported with
// ErrUnknownNode and take effect when the node joins.
//
// # Cost and sharing
//
// States share storage: every member of one set of groups (a FullMesh's
// members) views one immutable peer table minus its own entry, with its
// own keepalive stamped on; cluster CIDRs and block rules are one slice
// for all. A 5000-node full mesh with dual-stack pod CIDRs fits in a few
// MiB. An Engine update walks every node a few times with O(1) work each,
// so a node joining or leaving an N-node mesh costs O(N) for the whole
// cluster, and the N-1 other nodes' deltas (one peer upsert or removal
// and its routes, two cluster CIDRs) are one shared *Delta. Changes that
// touch every peer of every node (a keepalive or port change of a FullMesh
// policy) are O(N) per node by nature; their deltas are still views, not
// copies. A node in several overlapping groups pays for the union of its
// groups once per distinct set of groups.
package desired
