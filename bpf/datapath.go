package bpf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cilium/ebpf"
)

// Datapath is the loaded data plane: both programs and the pinned maps
// they share. Maps are pinned under Options.PinDir and survive the
// process; Open on the same directory finds them again, with every entry
// as it was. Methods are safe for concurrent use.
type Datapath struct {
	opts Options

	mu       sync.Mutex // serialises writers of policy maps
	classify classifyObjects
	deliver  deliverObjects
	// inner holds the inner map template of each policy map, with the
	// configured capacity.
	inner map[string]*ebpf.MapSpec
	// switched is when Apply last switched slots; see Apply.
	switched time.Time
}

// Open loads the programs and creates or re-opens the pinned maps. It
// changes no map entry and attaches nothing. Pinned maps of another
// layout (left by a version whose map definitions differ) make it fail
// with an error wrapping ebpf.ErrMapIncompatible; Remove clears them.
func Open(opts Options) (*Datapath, error) {
	return open(opts, ebpf.ProgramOptions{})
}

func open(opts Options, progOpts ebpf.ProgramOptions) (*Datapath, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("options: %w", err)
	}
	if err := os.MkdirAll(opts.PinDir, 0o700); err != nil {
		return nil, fmt.Errorf("create pin dir: %w", err)
	}
	if ok, err := isBPFFS(opts.PinDir); err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("pin dir %s: %w", opts.PinDir, ErrNotBPFFS)
	}
	if err := os.MkdirAll(filepath.Join(opts.PinDir, linkDir), 0o700); err != nil {
		return nil, fmt.Errorf("create link pin dir: %w", err)
	}

	cspec, err := loadClassify()
	if err != nil {
		return nil, err
	}
	dspec, err := loadDeliver()
	if err != nil {
		return nil, err
	}
	d := &Datapath{opts: opts, inner: map[string]*ebpf.MapSpec{}}
	for _, spec := range []*ebpf.CollectionSpec{cspec, dspec} {
		if err := d.size(spec); err != nil {
			return nil, err
		}
	}
	err = cspec.LoadAndAssign(&d.classify, &ebpf.CollectionOptions{
		Maps:     ebpf.MapOptions{PinPath: opts.PinDir},
		Programs: progOpts,
	})
	if err != nil {
		return nil, fmt.Errorf("load classify: %w", err)
	}
	shared := map[string]*ebpf.Map{}
	for name, m := range d.policyMaps() {
		shared[name] = m
	}
	for name, m := range map[string]*ebpf.Map{
		"vpblu_active": d.classify.VpbluActive, "vpblu_config": d.classify.VpbluConfig,
		"vpblu_counters": d.classify.VpbluCounters, "vpblu_drops": d.classify.VpbluDrops,
	} {
		shared[name] = m
	}
	err = dspec.LoadAndAssign(&d.deliver, &ebpf.CollectionOptions{
		MapReplacements: shared,
		Programs:        progOpts,
	})
	if err != nil {
		d.classify.Close()
		return nil, fmt.Errorf("load deliver: %w", err)
	}
	return d, nil
}

// size applies the configured capacities to a collection spec and keeps
// the inner map templates.
func (d *Datapath) size(spec *ebpf.CollectionSpec) error {
	c := d.opts.Capacity
	caps := map[string]int{
		"vpblu_remote4": c.Remotes, "vpblu_remote6": c.Remotes,
		"vpblu_local4": c.Locals, "vpblu_local6": c.Locals,
		"vpblu_cluster4": c.Clusters, "vpblu_cluster6": c.Clusters,
		"vpblu_block_src4": c.BlockClasses, "vpblu_block_src6": c.BlockClasses,
		"vpblu_block_dst4": c.BlockEntries, "vpblu_block_dst6": c.BlockEntries,
		"vpblu_nodes": c.Nodes, "vpblu_rules": c.BlockRules,
	}
	for name, n := range caps {
		ms, ok := spec.Maps[name]
		if !ok || ms.InnerMap == nil {
			return fmt.Errorf("map %s: missing or not a map of maps", name)
		}
		ms.InnerMap.MaxEntries = uint32(max(n, 1))
		d.inner[name] = ms.InnerMap
	}
	drops, ok := spec.Maps["vpblu_drops"]
	if !ok {
		return errors.New("map vpblu_drops missing")
	}
	drops.MaxEntries = uint32(d.opts.DropsBufferBytes)
	return nil
}

// policyMaps returns the maps of maps by name.
func (d *Datapath) policyMaps() map[string]*ebpf.Map {
	m := &d.classify.classifyMaps
	return map[string]*ebpf.Map{
		"vpblu_remote4": m.VpbluRemote4, "vpblu_remote6": m.VpbluRemote6,
		"vpblu_local4": m.VpbluLocal4, "vpblu_local6": m.VpbluLocal6,
		"vpblu_cluster4": m.VpbluCluster4, "vpblu_cluster6": m.VpbluCluster6,
		"vpblu_block_src4": m.VpbluBlockSrc4, "vpblu_block_src6": m.VpbluBlockSrc6,
		"vpblu_block_dst4": m.VpbluBlockDst4, "vpblu_block_dst6": m.VpbluBlockDst6,
		"vpblu_nodes": m.VpbluNodes, "vpblu_rules": m.VpbluRules,
	}
}

// PinDir is the directory the maps and links are pinned in.
func (d *Datapath) PinDir() string { return d.opts.PinDir }

// Close releases this process's handles. Pinned maps and attached
// programs stay in the kernel and keep working.
func (d *Datapath) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return errors.Join(d.deliver.Close(), d.classify.Close())
}

// Remove uninstalls the data plane pinned in pinDir: it detaches every
// program it attached (tcx links pinned there, and clsact filters of the
// current network namespace) and removes the pins, so the maps go away
// once nothing uses them. Removing a directory that does not exist is not
// an error.
func Remove(pinDir string) error {
	if pinDir == "" {
		pinDir = DefaultPinDir
	}
	if _, err := os.Stat(pinDir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	errs := []error{detachAllTCX(pinDir), detachAllLegacy()}
	if err := os.RemoveAll(pinDir); err != nil {
		errs = append(errs, fmt.Errorf("remove pins: %w", err))
	}
	return errors.Join(errs...)
}
