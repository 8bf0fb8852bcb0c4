package agent

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"strings"

	"github.com/lumbrjx/vpblu/nodeagent/keys"
	"github.com/lumbrjx/vpblu/nodeagent/mss"
	"github.com/lumbrjx/vpblu/nodeagent/rotation"
	"github.com/lumbrjx/vpblu/nodeagent/route"
	"github.com/lumbrjx/vpblu/nodeagent/wg"
)

// DefaultPodInterfaces match the host side of pod veths of common CNIs
// (Flannel and the bridge plugin "veth", Calico "cali", Cilium "lxc").
var DefaultPodInterfaces = []string{"veth*", "cali*", "lxc*"}

// DefaultDropSample sends one drop in this many to the drops ring buffer.
const DefaultDropSample = 64

// ErrInvalid marks bad Options or Deps.
var ErrInvalid = errors.New("invalid agent options")

// Options configure an Agent.
type Options struct {
	// Node is this node's name, as the stream's Hello carries it.
	Node string
	// Interface is the mesh's WireGuard interface; wg.MeshInterface when
	// empty.
	Interface string
	// ClampInterfaces is the interface pattern of the MSS clamp;
	// mss.DefaultInterfaces ("wg-*") when empty.
	ClampInterfaces string
	// NodeIP is the node's address; its interface gives the primary MTU.
	NodeIP netip.Addr
	// MTUOverhead is subtracted from the primary MTU; route's default
	// when 0.
	MTUOverhead int
	// Mark, Mask, Table and RulePriority of wg-mesh's path; route's
	// defaults when 0.
	Mark, Mask   uint32
	Table        int
	RulePriority int
	// RotationInterface is the temporary interface of a key rotation;
	// wg.RotationInterface when empty. ClampInterfaces must match it too.
	RotationInterface string
	// RotationMark and RotationTable are its path's (rotation.DefaultMark
	// and rotation.DefaultTable when 0). The mark must lie inside the mask
	// and differ from Mark under it.
	RotationMark  uint32
	RotationTable int
	// PodInterfaces are shell patterns (path.Match) of the host-side
	// interfaces of pods; DefaultPodInterfaces when empty.
	PodInterfaces []string
	// ClusterCIDRs contain every pod CIDR of the cluster. Until the first
	// state arrives, a fresh data plane drops cross-node traffic to them
	// (fail closed).
	ClusterCIDRs []netip.Prefix
	// DropSample: one drop in DropSample goes to the ring buffer;
	// DefaultDropSample when 0.
	DropSample uint32
	// Version is reported in Hello.
	Version string
}

// Deps are the parts the agent drives.
type Deps struct {
	Tunnels  Tunnels
	Routes   Routes
	Clamp    Clamp
	Datapath Datapath
	Keys     *keys.Store
	Links    Links
	// Journal keeps a key rotation's state across restarts, e.g.
	// rotation.FileJournal{Path: <state dir>/rotation.json}.
	Journal Journal
}

func (o Options) check() (Options, error) {
	if o.Node == "" {
		return o, fmt.Errorf("%w: no node name", ErrInvalid)
	}
	if !o.NodeIP.IsValid() {
		return o, fmt.Errorf("%w: no node IP", ErrInvalid)
	}
	if o.Interface == "" {
		o.Interface = wg.MeshInterface
	}
	if o.ClampInterfaces == "" {
		o.ClampInterfaces = mss.DefaultInterfaces
	}
	if len(o.PodInterfaces) == 0 {
		o.PodInterfaces = DefaultPodInterfaces
	}
	for _, p := range o.PodInterfaces {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			return o, fmt.Errorf("%w: pod interface pattern %q", ErrInvalid, p)
		}
	}
	for _, c := range o.ClusterCIDRs {
		if !c.IsValid() || c != c.Masked() {
			return o, fmt.Errorf("%w: cluster CIDR %s", ErrInvalid, c)
		}
	}
	if o.DropSample == 0 {
		o.DropSample = DefaultDropSample
	}
	return o.checkRotation()
}

// checkRotation fills the rotation path's defaults and checks that it
// can coexist with wg-mesh's.
func (o Options) checkRotation() (Options, error) {
	if o.RotationInterface == "" {
		o.RotationInterface = wg.RotationInterface
	}
	if o.RotationMark == 0 {
		o.RotationMark = rotation.DefaultMark
	}
	if o.RotationTable == 0 {
		o.RotationTable = rotation.DefaultTable
	}
	mark, mask, table := o.Mark, o.Mask, o.Table
	if mark == 0 {
		mark = route.DefaultMark
	}
	if mask == 0 {
		mask = route.DefaultMask
	}
	if table == 0 {
		table = route.DefaultTable
	}
	switch {
	case o.RotationInterface == o.Interface:
		return o, fmt.Errorf("%w: rotation interface %s is the mesh interface", ErrInvalid, o.Interface)
	case o.RotationMark&^mask != 0 || (o.RotationMark^mark)&mask == 0:
		return o, fmt.Errorf("%w: rotation mark %#x must lie inside mask %#x and differ from mark %#x", ErrInvalid, o.RotationMark, mask, mark)
	case o.RotationTable == table:
		return o, fmt.Errorf("%w: rotation table %d is the mesh table", ErrInvalid, table)
	}
	for _, name := range []string{o.Interface, o.RotationInterface} {
		if !clampMatches(o.ClampInterfaces, name) {
			return o, fmt.Errorf("%w: MSS clamp pattern %q does not match interface %s", ErrInvalid, o.ClampInterfaces, name)
		}
	}
	return o, nil
}

// clampMatches reports whether an nftables interface pattern (a name, or
// a prefix followed by "*") matches name.
func clampMatches(pattern, name string) bool {
	if p, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(name, p)
	}
	return pattern == name
}

// podInterface reports whether name is a pod's host-side interface.
func (o Options) podInterface(name string) bool {
	for _, p := range o.PodInterfaces {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

func (d Deps) check() error {
	if d.Tunnels == nil || d.Routes == nil || d.Clamp == nil || d.Datapath == nil || d.Keys == nil || d.Links == nil || d.Journal == nil {
		return fmt.Errorf("%w: every dependency is required", ErrInvalid)
	}
	return nil
}
