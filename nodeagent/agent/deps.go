package agent

import (
	"context"
	"errors"
	"net/netip"

	"github.com/lumbrjx/vpblu/bpf"
	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/nodeagent/mss"
	"github.com/lumbrjx/vpblu/nodeagent/rotation"
	"github.com/lumbrjx/vpblu/nodeagent/route"
	"github.com/lumbrjx/vpblu/nodeagent/wg"
)

// Tunnels configures WireGuard interfaces; *wg.Manager implements it.
type Tunnels interface {
	Kind() wg.Kind
	Set(wg.Config) error
	Status(name string) (wg.Status, error)
	Delete(name string) error
}

// Routes configures policy routing; *route.Router implements it.
type Routes interface {
	Set(route.Config) error
	MTU() int
	TunnelMTU(nodeIP netip.Addr, overhead int) (int, error)
}

// Clamp configures the MSS clamp; *mss.Clamper implements it.
type Clamp interface {
	Set(mss.Config) error
}

// Datapath is the eBPF data plane; BPF adapts *bpf.Datapath to it.
type Datapath interface {
	// Apply makes s the state in force, atomically; on error the previous
	// state stays.
	Apply(s bpf.State) error
	// Dump reads the state in force, in canonical form (the zero State
	// when none was applied).
	Dump() (bpf.State, error)
	AttachClassify(ifindex int) error
	DetachClassify(ifindex int) error
	AttachDeliver(ifindex int) error
	// DetachDeliver detaches deliver; an interface that is gone or has
	// no deliver is not an error (its pin is removed).
	DetachDeliver(ifindex int) error
	Counters() (map[string]uint64, error)
	// Remove detaches every program and removes the pinned maps.
	Remove() error
	// Close releases handles; programs stay attached.
	Close() error
}

// Journal keeps a key rotation's state; rotation.FileJournal implements
// it.
type Journal interface {
	rotation.Journal
	// Remove deletes what Save wrote; nothing saved is not an error.
	Remove() error
}

// Reporter sends what the agent reports besides acks and tunnel status;
// *stream.Client implements it. Calls may block while a stream sends.
type Reporter interface {
	ReportKey(*meshpb.KeyReport)
	ReportRotation(*meshpb.RotationReport)
}

// LinkEvent is a network interface appearing, changing or going away.
type LinkEvent struct {
	Name  string
	Index int
	Gone  bool
}

// Links finds interfaces and follows their changes; NetlinkLinks is the
// real one.
type Links interface {
	// Index returns the ifindex of interface name.
	Index(name string) (int, error)
	// Watch subscribes to link changes before it returns, then sends an
	// event for every existing interface and one per change. The channel
	// is closed when ctx ends or the subscription fails.
	Watch(ctx context.Context) (<-chan LinkEvent, error)
}

// BPF adapts *bpf.Datapath to Datapath.
type BPF struct{ *bpf.Datapath }

var _ Datapath = BPF{}

// Remove closes the datapath and uninstalls everything pinned in its
// directory.
func (b BPF) Remove() error {
	pin := b.PinDir()
	return errors.Join(b.Close(), bpf.Remove(pin))
}

var (
	_ Tunnels = (*wg.Manager)(nil)
	_ Routes  = (*route.Router)(nil)
	_ Clamp   = (*mss.Clamper)(nil)
	_ Journal = rotation.FileJournal{}
)
