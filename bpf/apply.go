package bpf

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/lumbrjx/vpblu/core/blocks"
)

// quiesce is how long Apply leaves a slot alone after switching away from
// it. A program reads the active slot once per packet and is done within
// microseconds; refilling the old slot sooner could show a packet that
// read the slot just before the switch a mix of two policies.
const quiesce = 2 * time.Millisecond

// entries are the contents of one inner map: how many, and how to write
// them.
type entries struct {
	n     int
	write func(m *ebpf.Map) error
}

func entriesOf[K, V any](keys []K, values []V) entries {
	return entries{n: len(keys), write: func(m *ebpf.Map) error {
		if len(keys) == 0 {
			return nil
		}
		_, err := m.BatchUpdate(keys, values, nil)
		if !errors.Is(err, ebpf.ErrNotSupported) {
			return err
		}
		for i := range keys { // kernels without batch updates
			if err := m.Put(keys[i], values[i]); err != nil {
				return err
			}
		}
		return nil
	}}
}

// Apply makes s the state in force. It fills a fresh set of inner maps
// for the inactive slot and switches slots with one write, so programs
// see the old state or the new one, never a mix. When s does not fit the
// capacities it returns an error wrapping ErrCapacity, and for invalid
// input one wrapping ErrInvalidState; either way the previous state stays
// in force, untouched.
func (d *Datapath) Apply(s State) error {
	cs, err := s.Canonical()
	if err != nil {
		return err
	}
	c := d.opts.Capacity
	// The compile limit only stops a runaway table early: what fits is
	// decided below, per map, after destinations go inline.
	table, err := blocks.Compile(cs.Blocks, blocks.Options{MaxClasses: c.BlockClasses, MaxDrops: c.BlockEntries + inlineDsts*c.BlockClasses})
	if errors.Is(err, blocks.ErrTooLarge) {
		return fmt.Errorf("%w: %w", ErrCapacity, err)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidState, err)
	}
	if n := len(cs.Nodes); n > 0 && cs.Nodes[n-1].ID >= uint32(c.Nodes) {
		return fmt.Errorf("%w: node id %d, ids must be below %d", ErrCapacity, cs.Nodes[n-1].ID, c.Nodes)
	}
	contents := policyContents(cs, table)
	for name, e := range contents {
		if limit := int(d.inner[name].MaxEntries); e.n > limit {
			return fmt.Errorf("%w: %s needs %d entries, capacity %d", ErrCapacity, name, e.n, limit)
		}
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	active, err := d.activeSlot()
	if err != nil {
		return err
	}
	next := active ^ 1
	if wait := quiesce - time.Since(d.switched); wait > 0 {
		time.Sleep(wait)
	}

	created := map[string]*ebpf.Map{}
	defer func() {
		for _, m := range created {
			m.Close() // the outer map holds its own reference
		}
	}()
	for name, e := range contents {
		m, err := ebpf.NewMap(d.inner[name])
		if err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
		created[name] = m
		if err := e.write(m); err != nil {
			return fmt.Errorf("fill %s: %w", name, capacityError(err))
		}
	}
	outer := d.policyMaps()
	for name, m := range created {
		if err := outer[name].Put(next, m); err != nil {
			return fmt.Errorf("install %s: %w", name, err)
		}
	}
	if err := d.classify.VpbluConfig.Put(next, configOf(cs.Config)); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	// The switch: from here on programs read the new slot.
	if err := d.classify.VpbluActive.Put(uint32(0), next); err != nil {
		return fmt.Errorf("switch slot: %w", err)
	}
	d.switched = time.Now()
	return nil
}

// SetRemoteMark changes the fwmark of one remote CIDR of the state in
// force with a single map write, e.g. to move a destination to a rotation
// interface and back (SPEC §11). The CIDR must be exactly one of the
// applied remotes, or the error wraps ErrNotFound. The next Apply replaces
// the mark with whatever its state says, so callers keep their State in
// step.
func (d *Datapath) SetRemoteMark(cidr netip.Prefix, mark uint32) error {
	cidr, err := canonicalPrefix(cidr)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidState, err)
	}
	if mark == 0 {
		return fmt.Errorf("%w: mark must not be zero", ErrInvalidState)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	slot, err := d.activeSlot()
	if err != nil {
		return err
	}
	name, key := "vpblu_remote6", any(lpm6(cidr))
	if cidr.Addr().Is4() {
		name, key = "vpblu_remote4", lpm4(cidr)
	}
	m, err := d.innerMap(name, slot)
	if err != nil {
		return err
	}
	if m == nil {
		return fmt.Errorf("remote %s: %w", cidr, ErrNotFound)
	}
	defer m.Close()
	var v remoteValue
	// An LPM lookup returns the longest match; the exact entry is checked
	// by the update below, which refuses to create one.
	if err := m.Lookup(key, &v); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("remote %s: %w", cidr, ErrNotFound)
		}
		return fmt.Errorf("look up remote %s: %w", cidr, err)
	}
	v.Mark = mark
	if err := m.Update(key, v, ebpf.UpdateExist); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) || errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("remote %s: %w", cidr, ErrNotFound)
		}
		return fmt.Errorf("update remote %s: %w", cidr, err)
	}
	return nil
}

// activeSlot reads the slot in force.
func (d *Datapath) activeSlot() (uint32, error) {
	var slot uint32
	if err := d.classify.VpbluActive.Lookup(uint32(0), &slot); err != nil {
		return 0, fmt.Errorf("read active slot: %w", err)
	}
	return slot & 1, nil
}

// innerMap returns the inner map of a policy map in slot, or nil when the
// slot was never filled.
func (d *Datapath) innerMap(name string, slot uint32) (*ebpf.Map, error) {
	var m *ebpf.Map
	err := d.policyMaps()[name].Lookup(slot, &m)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open %s slot %d: %w", name, slot, err)
	}
	return m, nil
}

// capacityError marks a kernel "map full" error as ErrCapacity.
func capacityError(err error) error {
	if errors.Is(err, unix.E2BIG) || errors.Is(err, unix.ENOSPC) {
		return fmt.Errorf("%w: %w", ErrCapacity, err)
	}
	return err
}

func configOf(c Config) configValue {
	v := configValue{DropSample: c.DropSample}
	if c.Strict {
		v.Flags |= configStrict
	}
	if c.Isolated {
		v.Flags |= configIsolated
	}
	return v
}

// policyContents lays a canonical state and its compiled blocks out as
// the entries of each inner map.
func policyContents(s State, t blocks.Table) map[string]entries {
	var (
		r4k []lpm4Key
		r4v []remoteValue
		r6k []lpm6Key
		r6v []remoteValue
	)
	for _, r := range s.Remotes {
		v := remoteValue{Node: r.Node, Mark: r.Mark}
		if r.CIDR.Addr().Is4() {
			r4k, r4v = append(r4k, lpm4(r.CIDR)), append(r4v, v)
		} else {
			r6k, r6v = append(r6k, lpm6(r.CIDR)), append(r6v, v)
		}
	}
	set := func(ps []netip.Prefix) (entries, entries) {
		var k4 []lpm4Key
		var k6 []lpm6Key
		for _, p := range ps {
			if p.Addr().Is4() {
				k4 = append(k4, lpm4(p))
			} else {
				k6 = append(k6, lpm6(p))
			}
		}
		return entriesOf(k4, ones(len(k4))), entriesOf(k6, ones(len(k6)))
	}
	out := map[string]entries{
		"vpblu_remote4": entriesOf(r4k, r4v),
		"vpblu_remote6": entriesOf(r6k, r6v),
	}
	out["vpblu_local4"], out["vpblu_local6"] = set(s.Locals)
	out["vpblu_cluster4"], out["vpblu_cluster6"] = set(s.Clusters)

	var (
		s4k []lpm4Key
		s4v []class4Value
		s6k []lpm6Key
		s6v []class6Value
		d4k []block4Key
		d6k []block6Key
	)
	dsts := map[uint32][]netip.Prefix{}
	for _, dr := range t.Drops {
		dsts[dr.Class] = append(dsts[dr.Class], dr.Dst)
	}
	spilled := map[uint32]bool{}
	for _, c := range t.Classes {
		ds := dsts[c.ID]
		inline := len(ds) <= inlineDsts
		spilled[c.ID] = !inline
		if c.Src.Addr().Is4() {
			v := class4Value{Class: c.ID, Ninline: notInline}
			if inline {
				v.Ninline = uint32(len(ds))
				for i, d := range ds {
					v.Dst[i] = dst4{Addr: d.Addr().As4(), Mask: [4]byte(mask(d))}
				}
			}
			s4k, s4v = append(s4k, lpm4(c.Src)), append(s4v, v)
		} else {
			v := class6Value{Class: c.ID, Ninline: notInline}
			if inline {
				v.Ninline = uint32(len(ds))
				for i, d := range ds {
					v.Dst[i] = dst6{Addr: d.Addr().As16(), Mask: [16]byte(mask(d))}
				}
			}
			s6k, s6v = append(s6k, lpm6(c.Src)), append(s6v, v)
		}
	}
	for _, dr := range t.Drops {
		if !spilled[dr.Class] {
			continue
		}
		bits := uint32(32 + dr.Dst.Bits())
		if dr.Dst.Addr().Is4() {
			d4k = append(d4k, block4Key{Prefixlen: bits, Class: dr.Class, Addr: dr.Dst.Addr().As4()})
		} else {
			d6k = append(d6k, block6Key{Prefixlen: bits, Class: dr.Class, Addr: dr.Dst.Addr().As16()})
		}
	}
	out["vpblu_block_src4"] = entriesOf(s4k, s4v)
	out["vpblu_block_src6"] = entriesOf(s6k, s6v)
	out["vpblu_block_dst4"] = entriesOf(d4k, ones(len(d4k)))
	out["vpblu_block_dst6"] = entriesOf(d6k, ones(len(d6k)))

	var nk []uint32
	var nv []nodeValue
	for _, n := range s.Nodes {
		v := nodeValue{Flags: nodeListed}
		if n.Ready {
			v.Flags |= nodeReady
		}
		if n.Isolated {
			v.Flags |= nodeIsolated
		}
		nk, nv = append(nk, n.ID), append(nv, v)
	}
	out["vpblu_nodes"] = entriesOf(nk, nv)

	var rk []ruleKey
	for _, r := range s.Blocks {
		k := ruleKey{Family: 6, SrcLen: uint8(r.Src.Bits()), DstLen: uint8(r.Dst.Bits())}
		if r.Src.Addr().Is4() {
			k.Family = 4
			a, b := r.Src.Addr().As4(), r.Dst.Addr().As4()
			copy(k.Src[:], a[:])
			copy(k.Dst[:], b[:])
		} else {
			k.Src, k.Dst = r.Src.Addr().As16(), r.Dst.Addr().As16()
		}
		rk = append(rk, k)
	}
	out["vpblu_rules"] = entriesOf(rk, ones(len(rk)))
	return out
}

// mask returns the netmask of p in network byte order.
func mask(p netip.Prefix) []byte {
	m := make([]byte, p.Addr().BitLen()/8)
	for i := range p.Bits() {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}

func ones(n int) []uint32 {
	v := make([]uint32, n)
	for i := range v {
		v[i] = 1
	}
	return v
}
