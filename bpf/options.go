package bpf

import "fmt"

// DefaultPinDir is where maps and links are pinned unless Options say
// otherwise.
const DefaultPinDir = "/sys/fs/bpf/vpblu"

// AttachMode chooses how programs are attached to interfaces.
type AttachMode int

const (
	// AttachAuto uses tcx links where the kernel has them (6.6 and
	// later) and clsact with cls_bpf otherwise.
	AttachAuto AttachMode = iota
	// AttachTCX only uses tcx links, and fails where the kernel lacks them.
	AttachTCX
	// AttachLegacy only uses a clsact qdisc with a cls_bpf filter in
	// direct-action mode.
	AttachLegacy
)

func (m AttachMode) String() string {
	switch m {
	case AttachAuto:
		return "auto"
	case AttachTCX:
		return "tcx"
	case AttachLegacy:
		return "clsact"
	}
	return fmt.Sprintf("attach%d", int(m))
}

// Capacity bounds the policy maps. Each IPv4 and IPv6 map holds up to the
// given number of entries; zero fields take the defaults of
// DefaultCapacity. Capacities may change between Opens of the same pin
// directory: they apply from the next Apply.
type Capacity struct {
	Remotes  int // remote CIDRs per family
	Locals   int // local pod CIDRs per family
	Clusters int // cluster CIDRs per family
	Nodes    int // node ids are below this
	// BlockRules bounds the block rules (both families together).
	BlockRules int
	// BlockClasses bounds block stage one (source prefixes) per family.
	BlockClasses int
	// BlockEntries bounds block stage two (class, destination) per
	// family. See package core/blocks for how rules turn into entries.
	BlockEntries int
}

// DefaultCapacity is sized for clusters of a few thousand nodes and
// policies of ten thousand block rules.
func DefaultCapacity() Capacity {
	return Capacity{
		Remotes:      16384,
		Locals:       64,
		Clusters:     256,
		Nodes:        16384,
		BlockRules:   16384,
		BlockClasses: 16384,
		BlockEntries: 1 << 20,
	}
}

// Options configure Open.
type Options struct {
	// PinDir is the bpffs directory for maps and links; DefaultPinDir
	// when empty.
	PinDir string
	// Capacity bounds the policy maps.
	Capacity Capacity
	// Attach chooses tcx or clsact; AttachAuto by default.
	Attach AttachMode
	// DropsBufferBytes sizes the ring buffer of sampled drops: a power of
	// two and a multiple of the page size, 256 KiB when zero. It is fixed
	// when the maps are first created.
	DropsBufferBytes int
}

func (o Options) withDefaults() (Options, error) {
	if o.PinDir == "" {
		o.PinDir = DefaultPinDir
	}
	def := DefaultCapacity()
	c := &o.Capacity
	for _, f := range []struct {
		v   *int
		def int
	}{
		{&c.Remotes, def.Remotes}, {&c.Locals, def.Locals}, {&c.Clusters, def.Clusters},
		{&c.Nodes, def.Nodes}, {&c.BlockRules, def.BlockRules},
		{&c.BlockClasses, def.BlockClasses}, {&c.BlockEntries, def.BlockEntries},
	} {
		switch {
		case *f.v == 0:
			*f.v = f.def
		case *f.v < 0 || *f.v > 1<<28:
			return o, fmt.Errorf("capacity %d out of range", *f.v)
		}
	}
	if o.DropsBufferBytes == 0 {
		o.DropsBufferBytes = 256 << 10
	}
	if n := o.DropsBufferBytes; n < 4096 || n&(n-1) != 0 {
		return o, fmt.Errorf("drops buffer size %d is not a power of two of at least 4096", n)
	}
	switch o.Attach {
	case AttachAuto, AttachTCX, AttachLegacy:
	default:
		return o, fmt.Errorf("unknown attach mode %d", o.Attach)
	}
	return o, nil
}
