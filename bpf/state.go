package bpf

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/lumbrjx/vpblu/core/blocks"
)

// State is everything the programs decide from. Apply writes a complete
// State; whatever the maps held before is replaced, never merged.
type State struct {
	Config Config
	// Remotes are the CIDRs behind other nodes' tunnels.
	Remotes []Remote
	// Locals are this node's own pod CIDRs.
	Locals []netip.Prefix
	// Clusters contain every pod CIDR of the cluster.
	Clusters []netip.Prefix
	// Nodes hold per-node flags. A node a Remote names but Nodes does not
	// list is neither ready nor isolated.
	Nodes []Node
	// Blocks are CIDR×CIDR drops, enforced by classify and deliver.
	Blocks []blocks.Rule
}

// Config holds the node-wide settings.
type Config struct {
	// Strict drops cross-node traffic that has no ready tunnel.
	Strict bool
	// Isolated drops all cross-node traffic of this node, both ways.
	Isolated bool
	// DropSample sends 1 in DropSample drops to the ring buffer read by
	// Drops; 0 sends none.
	DropSample uint32
}

// Remote steers traffic to CIDR into node's tunnel by setting Mark.
type Remote struct {
	CIDR netip.Prefix
	// Node is the id of the node owning CIDR (the caller's numbering, not
	// zero).
	Node uint32
	// Mark is the fwmark that policy routing maps to the interface of the
	// node's tunnel (not zero).
	Mark uint32
}

// Node is the state of one peer node.
type Node struct {
	ID uint32
	// Ready is true while the tunnel to the node is up.
	Ready bool
	// Isolated quarantines the node: traffic to and from its CIDRs is
	// dropped.
	Isolated bool
}

// Canonical returns s validated and in canonical form: prefixes masked,
// duplicates removed, every list sorted. Dump returns canonical states,
// so compare Dump with Canonical of what was applied.
func (s State) Canonical() (State, error) {
	out := State{Config: s.Config}
	var err error
	for _, r := range s.Remotes {
		if r.Node == 0 || r.Mark == 0 {
			return State{}, fmt.Errorf("%w: remote %s: node and mark must not be zero", ErrInvalidState, r.CIDR)
		}
		if r.CIDR, err = canonicalPrefix(r.CIDR); err != nil {
			return State{}, fmt.Errorf("%w: remote: %w", ErrInvalidState, err)
		}
		out.Remotes = append(out.Remotes, r)
	}
	slices.SortFunc(out.Remotes, func(a, b Remote) int {
		return cmp.Or(comparePrefix(a.CIDR, b.CIDR), cmp.Compare(a.Node, b.Node), cmp.Compare(a.Mark, b.Mark))
	})
	out.Remotes = slices.Compact(out.Remotes)
	for i := 1; i < len(out.Remotes); i++ {
		if out.Remotes[i].CIDR == out.Remotes[i-1].CIDR {
			return State{}, fmt.Errorf("%w: remote %s listed twice with different targets", ErrInvalidState, out.Remotes[i].CIDR)
		}
	}
	if out.Locals, err = canonicalPrefixes(s.Locals); err != nil {
		return State{}, fmt.Errorf("%w: local: %w", ErrInvalidState, err)
	}
	if out.Clusters, err = canonicalPrefixes(s.Clusters); err != nil {
		return State{}, fmt.Errorf("%w: cluster: %w", ErrInvalidState, err)
	}
	out.Nodes = slices.Clone(s.Nodes)
	slices.SortFunc(out.Nodes, func(a, b Node) int { return cmp.Compare(a.ID, b.ID) })
	for i, n := range out.Nodes {
		if n.ID == 0 {
			return State{}, fmt.Errorf("%w: node id 0", ErrInvalidState)
		}
		if i > 0 && out.Nodes[i-1].ID == n.ID {
			return State{}, fmt.Errorf("%w: node %d listed twice", ErrInvalidState, n.ID)
		}
	}
	for _, r := range s.Blocks {
		if err := r.Validate(); err != nil {
			return State{}, fmt.Errorf("%w: %w", ErrInvalidState, err)
		}
		out.Blocks = append(out.Blocks, blocks.Rule{Src: r.Src.Masked(), Dst: r.Dst.Masked()})
	}
	slices.SortFunc(out.Blocks, func(a, b blocks.Rule) int {
		return cmp.Or(comparePrefix(a.Src, b.Src), comparePrefix(a.Dst, b.Dst))
	})
	out.Blocks = slices.Compact(out.Blocks)
	return out, nil
}

func canonicalPrefix(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return p, fmt.Errorf("prefix %s not valid", p)
	}
	if p.Addr().Is4In6() {
		return p, fmt.Errorf("prefix %s is IPv4-mapped IPv6, use the IPv4 form", p)
	}
	return p.Masked(), nil
}

func canonicalPrefixes(ps []netip.Prefix) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, p := range ps {
		c, err := canonicalPrefix(p)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	slices.SortFunc(out, comparePrefix)
	return slices.Compact(out), nil
}

// comparePrefix orders prefixes by address (IPv4 first), then shorter
// first.
func comparePrefix(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}
