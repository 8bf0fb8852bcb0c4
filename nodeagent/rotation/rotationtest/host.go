// Package rotationtest holds fakes for testing package rotation: a Host
// that composes overlays onto a fixed desired state and applies them to
// the fakes of packages wg (wgtest) and route (routetest) and to a
// recorded BPF state, rendering all of it as text; and an in-memory
// Journal.
package rotationtest

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/lumbrjx/vpblu/bpf"
	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/nodeagent/rotation"
	"github.com/lumbrjx/vpblu/nodeagent/route"
	"github.com/lumbrjx/vpblu/nodeagent/route/routetest"
	"github.com/lumbrjx/vpblu/nodeagent/wg"
	"github.com/lumbrjx/vpblu/nodeagent/wg/wgtest"
)

// Primary is the fake node's primary interface; its MTU is 1500.
const Primary = "eth0"

// Host is a fake rotation.Host and rotation.Tunnels: an agent reduced to
// what a rotation touches. It is safe for concurrent use.
type Host struct {
	WG     *wgtest.Backend
	Kernel *routetest.Kernel
	wg     *wg.Manager
	router *route.Router
	keys   rotation.KeyReader
	nodeIP netip.Addr

	mu      sync.Mutex
	state   desired.NodeState
	overlay rotation.Overlay
	bpf     bpf.State
	deliver []string
	applies int
	// FailTemp makes Apply fail while the overlay has a temporary
	// interface, as a port already in use would.
	failTemp error
	// noState: the agent has not received a desired state yet.
	noState bool
}

var (
	_ rotation.Host    = (*Host)(nil)
	_ rotation.Tunnels = (*Host)(nil)
)

// NewHost returns a host for the node with address nodeIP running state,
// its keys read from k.
func NewHost(nodeIP netip.Addr, state desired.NodeState, k rotation.KeyReader) *Host {
	h := &Host{WG: wgtest.New(wg.Kernel), Kernel: routetest.New(), keys: k, nodeIP: nodeIP, state: state}
	h.wg = wg.NewManager(h.WG)
	h.router = route.New(h.Kernel, route.Options{})
	h.Kernel.AddLink(Primary, 1500, 1, netip.PrefixFrom(nodeIP, 24))
	return h
}

// SetState replaces the desired state and reconciles, as a SyncState
// would.
func (h *Host) SetState(s desired.NodeState) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.state, h.noState = s, false
	return h.reconcile()
}

// FailTemp makes every Apply with a temporary interface fail with err
// (nil: stop failing).
func (h *Host) FailTemp(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failTemp = err
}

// Forget makes the host an agent that just started: it keeps overlays
// but has no desired state until SetState.
func (h *Host) Forget() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.noState = true
}

// Applies counts reconciles.
func (h *Host) Applies() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.applies
}

// Apply implements rotation.Host.
func (h *Host) Apply(o rotation.Overlay) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.overlay = o
	if h.noState {
		return rotation.ErrNoDesiredState
	}
	return h.reconcile()
}

// Overlay is the overlay the host holds.
func (h *Host) Overlay() rotation.Overlay {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.overlay.Clone()
}

func (h *Host) reconcile() error {
	h.applies++
	active, err := h.keys.Active()
	if err != nil {
		return err
	}
	c, err := rotation.Compose(h.overlay, Base(h.state, active.Private, h.nodeIP), h.keys)
	if err != nil {
		return err
	}
	if c.Temp != nil && h.failTemp != nil {
		return h.failTemp
	}
	if err := h.wg.Set(c.Mesh); err != nil {
		return err
	}
	if !h.Kernel.HasLink(wg.MeshInterface) {
		h.Kernel.AddLink(wg.MeshInterface, wg.DefaultMTU, 0)
	}
	if c.Temp != nil {
		if err := h.wg.Set(*c.Temp); err != nil {
			return err
		}
		if !h.Kernel.HasLink(c.Temp.Name) {
			h.Kernel.AddLink(c.Temp.Name, wg.DefaultMTU, 0)
		}
	}
	if err := h.router.Set(c.Routes); err != nil {
		return err
	}
	h.bpf = c.BPF
	h.deliver = []string{wg.MeshInterface}
	if c.Temp != nil {
		h.deliver = append(h.deliver, c.Temp.Name)
	}
	return nil
}

// Delete implements rotation.Tunnels: the interface goes, and with it
// its routes.
func (h *Host) Delete(name string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.wg.Delete(name); err != nil {
		return err
	}
	h.Kernel.RemoveLink(name)
	h.deliver = slices.DeleteFunc(h.deliver, func(n string) bool { return n == name })
	return nil
}

// Status implements rotation.Tunnels.
func (h *Host) Status(name string) (wg.Status, error) { return h.wg.Status(name) }

// Handshake records a completed handshake with pub on interface name at t.
func (h *Host) Handshake(name string, pub wgtypes.Key, t time.Time) error {
	return h.WG.SetTraffic(name, pub, t, 1, 1)
}

// Render prints WireGuard, routing and the BPF remotes as text.
func (h *Host) Render() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var s strings.Builder
	s.WriteString("-- wireguard\n")
	s.WriteString(h.WG.Render())
	for _, name := range []string{wg.MeshInterface, wg.RotationInterface} {
		ss := h.WG.Sessions(name)
		if len(ss) == 0 {
			continue
		}
		keys := make([]wgtypes.Key, 0, len(ss))
		for k := range ss {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b wgtypes.Key) int { return strings.Compare(a.String(), b.String()) })
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s:%d", k.String()[:8], ss[k]))
		}
		fmt.Fprintf(&s, "sessions %s: %s\n", name, strings.Join(parts, " "))
	}
	s.WriteString("-- routing\n")
	s.WriteString(h.Kernel.Render())
	s.WriteString("-- bpf\n")
	for _, r := range h.bpf.Remotes {
		fmt.Fprintf(&s, "remote %s node %d mark %#x\n", r.CIDR, r.Node, r.Mark)
	}
	fmt.Fprintf(&s, "deliver on %s\n", strings.Join(h.deliver, " "))
	return s.String()
}

// ErrInjected is a failure a test injects.
var ErrInjected = errors.New("injected failure")
