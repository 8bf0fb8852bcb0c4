package bpf

import (
	"fmt"
	"math/bits"
	"net/netip"

	"github.com/lumbrjx/vpblu/core/blocks"
)

// Dump reads the state in force back from the maps, in canonical form
// (see State.Canonical). After a restart it returns what the previous
// process applied, so callers can compare. Before the first Apply it
// returns the zero State.
func (d *Datapath) Dump() (State, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	slot, err := d.activeSlot()
	if err != nil {
		return State{}, err
	}
	var s State
	var cfg configValue
	if err := d.classify.VpbluConfig.Lookup(slot, &cfg); err != nil {
		return State{}, fmt.Errorf("read config: %w", err)
	}
	s.Config = Config{Strict: cfg.Flags&configStrict != 0, Isolated: cfg.Flags&configIsolated != 0, DropSample: cfg.DropSample}

	err = eachEntry(d, "vpblu_remote4", slot, func(k lpm4Key, v remoteValue) {
		s.Remotes = append(s.Remotes, Remote{CIDR: k.prefix(), Node: v.Node, Mark: v.Mark})
	})
	if err == nil {
		err = eachEntry(d, "vpblu_remote6", slot, func(k lpm6Key, v remoteValue) {
			s.Remotes = append(s.Remotes, Remote{CIDR: k.prefix(), Node: v.Node, Mark: v.Mark})
		})
	}
	for _, set := range []struct {
		name4, name6 string
		into         *[]netip.Prefix
	}{
		{"vpblu_local4", "vpblu_local6", &s.Locals},
		{"vpblu_cluster4", "vpblu_cluster6", &s.Clusters},
	} {
		if err == nil {
			err = eachEntry(d, set.name4, slot, func(k lpm4Key, _ uint32) { *set.into = append(*set.into, k.prefix()) })
		}
		if err == nil {
			err = eachEntry(d, set.name6, slot, func(k lpm6Key, _ uint32) { *set.into = append(*set.into, k.prefix()) })
		}
	}
	if err == nil {
		err = eachEntry(d, "vpblu_nodes", slot, func(id uint32, v nodeValue) {
			if v.Flags&nodeListed != 0 {
				s.Nodes = append(s.Nodes, Node{ID: id, Ready: v.Flags&nodeReady != 0, Isolated: v.Flags&nodeIsolated != 0})
			}
		})
	}
	if err == nil {
		err = eachEntry(d, "vpblu_rules", slot, func(k ruleKey, _ uint32) {
			s.Blocks = append(s.Blocks, blocks.Rule{
				Src: netip.PrefixFrom(addrFrom(k.Family, k.Src), int(k.SrcLen)),
				Dst: netip.PrefixFrom(addrFrom(k.Family, k.Dst), int(k.DstLen)),
			})
		})
	}
	if err != nil {
		return State{}, err
	}
	return s.Canonical()
}

// dumpTable reads the compiled block table in force, for tests.
func (d *Datapath) dumpTable() (blocks.Table, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	slot, err := d.activeSlot()
	if err != nil {
		return blocks.Table{}, err
	}
	var t blocks.Table
	inline := map[uint32][]netip.Prefix{}
	err = eachEntry(d, "vpblu_block_src4", slot, func(k lpm4Key, v class4Value) {
		t.Classes = append(t.Classes, blocks.Class{Src: k.prefix(), ID: v.Class})
		if v.Ninline != notInline {
			inline[v.Class] = nil
			for _, dst := range v.Dst[:min(v.Ninline, inlineDsts)] {
				inline[v.Class] = append(inline[v.Class], netip.PrefixFrom(netip.AddrFrom4(dst.Addr), maskBits(dst.Mask[:])))
			}
		}
	})
	if err == nil {
		err = eachEntry(d, "vpblu_block_src6", slot, func(k lpm6Key, v class6Value) {
			t.Classes = append(t.Classes, blocks.Class{Src: k.prefix(), ID: v.Class})
			if v.Ninline != notInline {
				inline[v.Class] = nil
				for _, dst := range v.Dst[:min(v.Ninline, inlineDsts)] {
					inline[v.Class] = append(inline[v.Class], netip.PrefixFrom(netip.AddrFrom16(dst.Addr), maskBits(dst.Mask[:])))
				}
			}
		})
	}
	for id, dsts := range inline {
		for _, dst := range dsts {
			t.Drops = append(t.Drops, blocks.Drop{Class: id, Dst: dst})
		}
	}
	if err == nil {
		err = eachEntry(d, "vpblu_block_dst4", slot, func(k block4Key, _ uint32) {
			t.Drops = append(t.Drops, blocks.Drop{Class: k.Class, Dst: netip.PrefixFrom(netip.AddrFrom4(k.Addr), int(k.Prefixlen)-32)})
		})
	}
	if err == nil {
		err = eachEntry(d, "vpblu_block_dst6", slot, func(k block6Key, _ uint32) {
			t.Drops = append(t.Drops, blocks.Drop{Class: k.Class, Dst: netip.PrefixFrom(netip.AddrFrom16(k.Addr), int(k.Prefixlen)-32)})
		})
	}
	return t, err
}

// maskBits counts the leading ones of a netmask.
func maskBits(m []byte) int {
	n := 0
	for _, b := range m {
		n += bits.LeadingZeros8(^b)
	}
	return n
}

// eachEntry calls f for every entry of a policy map's inner map in slot.
func eachEntry[K, V any](d *Datapath, name string, slot uint32, f func(K, V)) error {
	m, err := d.innerMap(name, slot)
	if err != nil || m == nil {
		return err
	}
	defer m.Close()
	var (
		k K
		v V
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		f(k, v)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	return nil
}
