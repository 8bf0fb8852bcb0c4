package bpf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// linkDir is the subdirectory of the pin directory holding tcx links,
// one per (hook, interface), named "<hook>-<ifindex>".
const linkDir = "links"

// The clsact path installs one cls_bpf filter per hook and interface on
// the ingress side, with this priority and handle and the name
// "vpblu_<hook>", which is how Detach and Remove find it again.
const (
	legacyPriority = 0x7b1
	legacyHandle   = 0x7b1
	legacyPrefix   = "vpblu_"
)

// Attachment is one program attached to one interface.
type Attachment struct {
	Hook    Hook
	Ifindex int
	// Mode is AttachTCX or AttachLegacy.
	Mode AttachMode
	// Live is false for a pinned tcx link whose interface is gone; Detach
	// removes its pin.
	Live bool
}

// AttachClassify attaches classify to tc ingress of the interface (a
// pod's host-side veth). Attaching again, also from a new process after a
// restart, atomically replaces the program in place: no packet misses it.
func (d *Datapath) AttachClassify(ifindex int) error { return d.Attach(HookClassify, ifindex) }

// DetachClassify detaches classify from the interface.
func (d *Datapath) DetachClassify(ifindex int) error { return d.Detach(HookClassify, ifindex) }

// AttachDeliver attaches deliver to tc ingress of the interface (the
// WireGuard interface, an L3 device).
func (d *Datapath) AttachDeliver(ifindex int) error { return d.Attach(HookDeliver, ifindex) }

// DetachDeliver detaches deliver from the interface.
func (d *Datapath) DetachDeliver(ifindex int) error { return d.Detach(HookDeliver, ifindex) }

// Attach attaches the program of hook to tc ingress of the interface, with
// a pinned tcx link or a clsact filter as Options.Attach says. Only one
// of the two is left attached.
func (d *Datapath) Attach(h Hook, ifindex int) error {
	prog, err := d.program(h)
	if err != nil {
		return err
	}
	if ifindex <= 0 {
		return fmt.Errorf("attach %s: bad ifindex %d", h, ifindex)
	}
	if d.opts.Attach != AttachLegacy {
		err := d.attachTCX(h, ifindex, prog)
		if err == nil {
			return detachLegacy(h, ifindex)
		}
		if !errors.Is(err, ebpf.ErrNotSupported) || d.opts.Attach == AttachTCX {
			return err
		}
	}
	if err := attachLegacy(h, ifindex, prog); err != nil {
		return err
	}
	return d.detachTCX(h, ifindex)
}

// Detach detaches the program of hook from the interface, whichever way
// it was attached, and removes the clsact qdisc when no filter is left on
// it. Detaching what is not attached, or from an interface that is gone,
// is not an error.
func (d *Datapath) Detach(h Hook, ifindex int) error {
	return errors.Join(d.detachTCX(h, ifindex), detachLegacy(h, ifindex))
}

// Attachments lists the programs attached through this pin directory
// (tcx links) and the vpblu clsact filters of the calling thread's network
// namespace.
func (d *Datapath) Attachments() ([]Attachment, error) {
	var out []Attachment
	pins, err := os.ReadDir(filepath.Join(d.opts.PinDir, linkDir))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("list link pins: %w", err)
	}
	for _, p := range pins {
		h, ifindex, ok := parseLinkPin(p.Name())
		if !ok {
			continue
		}
		a := Attachment{Hook: h, Ifindex: ifindex, Mode: AttachTCX}
		if l, err := link.LoadPinnedLink(filepath.Join(d.opts.PinDir, linkDir, p.Name()), nil); err == nil {
			a.Live = tcxIfindex(l) == ifindex
			l.Close()
		}
		out = append(out, a)
	}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	for _, l := range links {
		filters, err := netlink.FilterList(l, netlink.HANDLE_MIN_INGRESS)
		if err != nil {
			continue // no clsact qdisc
		}
		for _, f := range filters {
			if h, ok := ourFilter(f); ok {
				out = append(out, Attachment{Hook: h, Ifindex: l.Attrs().Index, Mode: AttachLegacy, Live: true})
			}
		}
	}
	slices.SortFunc(out, func(a, b Attachment) int {
		if a.Ifindex != b.Ifindex {
			return a.Ifindex - b.Ifindex
		}
		return int(a.Hook) - int(b.Hook)
	})
	return out, nil
}

func (d *Datapath) program(h Hook) (*ebpf.Program, error) {
	switch h {
	case HookClassify:
		return d.classify.VpbluClassify, nil
	case HookDeliver:
		return d.deliver.VpbluDeliver, nil
	}
	return nil, fmt.Errorf("unknown hook %d", h)
}

func (d *Datapath) linkPin(h Hook, ifindex int) string {
	return filepath.Join(d.opts.PinDir, linkDir, h.String()+"-"+strconv.Itoa(ifindex))
}

func parseLinkPin(name string) (Hook, int, bool) {
	hook, idx, ok := strings.Cut(name, "-")
	n, err := strconv.Atoi(idx)
	if !ok || err != nil || n <= 0 {
		return 0, 0, false
	}
	for _, h := range []Hook{HookClassify, HookDeliver} {
		if h.String() == hook {
			return h, n, true
		}
	}
	return 0, 0, false
}

// tcxIfindex returns the interface a tcx link is attached to, or 0 when
// it is defunct (the interface went away).
func tcxIfindex(l link.Link) int {
	info, err := l.Info()
	if err != nil || info.TCX() == nil {
		return 0
	}
	return int(info.TCX().Ifindex)
}

func (d *Datapath) attachTCX(h Hook, ifindex int, prog *ebpf.Program) error {
	path := d.linkPin(h, ifindex)
	if l, err := link.LoadPinnedLink(path, nil); err == nil {
		defer l.Close()
		if tcxIfindex(l) == ifindex {
			if info, err := l.Info(); err == nil && sameProgram(info.Program, prog) {
				return nil
			}
			if err := l.Update(prog); err != nil {
				return fmt.Errorf("replace %s on ifindex %d: %w", h, ifindex, err)
			}
			return nil
		}
		// Defunct: the interface this pin was for is gone.
		if err := l.Unpin(); err != nil {
			return fmt.Errorf("remove stale link pin: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("open link pin %s: %w", path, err)
	}
	l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		return fmt.Errorf("attach %s to ifindex %d with tcx: %w", h, ifindex, err)
	}
	defer l.Close()
	if err := l.Pin(path); err != nil {
		return errors.Join(fmt.Errorf("pin %s link: %w", h, err), l.Detach())
	}
	return nil
}

func (d *Datapath) detachTCX(h Hook, ifindex int) error {
	return detachPinnedLink(d.linkPin(h, ifindex))
}

func detachPinnedLink(path string) error {
	l, err := link.LoadPinnedLink(path, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open link pin %s: %w", path, err)
	}
	defer l.Close()
	var errs []error
	if tcxIfindex(l) != 0 {
		if err := l.Detach(); err != nil {
			errs = append(errs, fmt.Errorf("detach link %s: %w", path, err))
		}
	}
	if err := l.Unpin(); err != nil {
		errs = append(errs, fmt.Errorf("unpin link %s: %w", path, err))
	}
	return errors.Join(errs...)
}

// detachAllTCX detaches and unpins every link pinned under pinDir.
func detachAllTCX(pinDir string) error {
	pins, err := os.ReadDir(filepath.Join(pinDir, linkDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list link pins: %w", err)
	}
	var errs []error
	for _, p := range pins {
		errs = append(errs, detachPinnedLink(filepath.Join(pinDir, linkDir, p.Name())))
	}
	return errors.Join(errs...)
}

func legacyFilter(h Hook, ifindex, fd int) *netlink.BpfFilter {
	return &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: ifindex,
			Parent:    netlink.HANDLE_MIN_INGRESS,
			Handle:    legacyHandle,
			Protocol:  unix.ETH_P_ALL,
			Priority:  legacyPriority,
		},
		Fd:           fd,
		Name:         legacyPrefix + h.String(),
		DirectAction: true,
	}
}

func ourFilter(f netlink.Filter) (Hook, bool) {
	bf, ok := f.(*netlink.BpfFilter)
	if !ok || bf.Priority != legacyPriority || !strings.HasPrefix(bf.Name, legacyPrefix) {
		return 0, false
	}
	switch strings.TrimPrefix(bf.Name, legacyPrefix) {
	case HookClassify.String():
		return HookClassify, true
	case HookDeliver.String():
		return HookDeliver, true
	}
	return 0, false
}

func clsact(ifindex int) *netlink.GenericQdisc {
	return &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: ifindex,
			Handle:    netlink.MakeHandle(0xffff, 0),
			Parent:    netlink.HANDLE_CLSACT,
		},
		QdiscType: "clsact",
	}
}

// attachLegacy adds a clsact qdisc if there is none and installs (or
// atomically replaces) the filter.
func attachLegacy(h Hook, ifindex int, prog *ebpf.Program) error {
	if err := netlink.QdiscAdd(clsact(ifindex)); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add clsact to ifindex %d: %w", ifindex, err)
	}
	if sameProgramAttached(h, ifindex, prog) {
		return nil
	}
	// cls_bpf refuses a filter whose ETH_P_ALL handle already exists
	// under another protocol; replace keeps the one we own.
	if err := netlink.FilterReplace(legacyFilter(h, ifindex, prog.FD())); err != nil {
		return fmt.Errorf("attach %s to ifindex %d with clsact: %w", h, ifindex, err)
	}
	return nil
}

// sameProgramAttached reports whether our clsact filter for h on the
// interface already runs a program identical to prog: the same
// instructions (tag) over the same maps. Replacing it would change only
// the program's ID; keeping it makes a restart leave the data plane
// exactly as it was.
func sameProgramAttached(h Hook, ifindex int, prog *ebpf.Program) bool {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return false
	}
	filters, err := netlink.FilterList(l, netlink.HANDLE_MIN_INGRESS)
	if err != nil {
		return false
	}
	for _, f := range filters {
		if hook, ok := ourFilter(f); !ok || hook != h {
			continue
		}
		return sameProgram(ebpf.ProgramID(f.(*netlink.BpfFilter).Id), prog)
	}
	return false
}

// sameProgram reports whether the loaded program id runs the same
// instructions (tag) over the same maps as prog.
func sameProgram(id ebpf.ProgramID, prog *ebpf.Program) bool {
	old, err := ebpf.NewProgramFromID(id)
	if err != nil {
		return false
	}
	defer old.Close()
	oldInfo, err := old.Info()
	if err != nil {
		return false
	}
	newInfo, err := prog.Info()
	if err != nil || oldInfo.Tag != newInfo.Tag {
		return false
	}
	oldMaps, ok1 := oldInfo.MapIDs()
	newMaps, ok2 := newInfo.MapIDs()
	slices.Sort(oldMaps)
	slices.Sort(newMaps)
	return ok1 && ok2 && slices.Equal(oldMaps, newMaps)
}

// detachLegacy deletes our filter and then the clsact qdisc when no
// filter is left on it.
func detachLegacy(h Hook, ifindex int) error {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) || errors.Is(err, unix.ENODEV) {
			return nil
		}
		return fmt.Errorf("find ifindex %d: %w", ifindex, err)
	}
	return detachLegacyFrom(l, func(got Hook) bool { return got == h })
}

// detachLegacyFrom deletes our filters that match; when it deleted one
// and no filter is left on either side, it deletes the clsact qdisc too.
func detachLegacyFrom(l netlink.Link, match func(Hook) bool) error {
	filters, err := netlink.FilterList(l, netlink.HANDLE_MIN_INGRESS)
	if err != nil {
		return nil // no clsact qdisc, nothing of ours
	}
	removed, left := 0, 0
	for _, f := range filters {
		h, ok := ourFilter(f)
		if !ok || !match(h) {
			left++
			continue
		}
		if err := netlink.FilterDel(f); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("delete %s filter on %s: %w", h, l.Attrs().Name, err)
		}
		removed++
	}
	if removed == 0 || left > 0 {
		return nil
	}
	if egress, err := netlink.FilterList(l, netlink.HANDLE_MIN_EGRESS); err != nil || len(egress) > 0 {
		return nil
	}
	if err := netlink.QdiscDel(clsact(l.Attrs().Index)); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("delete clsact on %s: %w", l.Attrs().Name, err)
	}
	return nil
}

// detachAllLegacy deletes every vpblu filter in the current network
// namespace.
func detachAllLegacy() error {
	links, err := netlink.LinkList()
	if err != nil {
		return fmt.Errorf("list interfaces: %w", err)
	}
	var errs []error
	for _, l := range links {
		errs = append(errs, detachLegacyFrom(l, func(Hook) bool { return true }))
	}
	return errors.Join(errs...)
}
