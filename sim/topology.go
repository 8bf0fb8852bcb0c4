package sim

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/lumbrjx/vpblu/tools/netns"
)

// Node is one simulated node: a network namespace on the underlay with a
// bridge for its pods.
type Node struct {
	Index  int
	Name   string
	NS     netns.NS
	IPv4   netip.Addr
	IPv6   netip.Addr
	PodV4  netip.Prefix
	PodV6  netip.Prefix
	Pods   []*Pod
	Uplink string // underlay interface in the node namespace
}

// Pod is one simulated pod: a network namespace behind a host-side veth
// on its node's bridge.
type Pod struct {
	Name     string
	Node     *Node
	NS       netns.NS
	IPv4     netip.Addr
	IPv6     netip.Addr
	HostVeth string // the host-side veth in the node namespace
}

// Network is the namespaces and links of one simulator slot.
type Network struct {
	Plan     Plan
	Underlay netns.NS
	Nodes    []*Node
}

// NetworkOptions shape the network.
type NetworkOptions struct {
	Slot        int
	Nodes       int
	PodsPerNode int
}

const (
	bridgeName = "cni0"
	uplinkName = "eth0"
	podIface   = "eth0"
	// PodVethPrefix starts the name of every host-side pod veth; the
	// agents attach classify to interfaces matching PodVethPrefix+"*".
	PodVethPrefix = "veth"
)

// BuildNetwork creates the underlay, nodes and pods of a slot. Leftovers
// of an earlier run of the same slot are removed first. On error,
// everything created so far is removed.
func BuildNetwork(opts NetworkOptions) (_ *Network, err error) {
	if opts.Nodes < 1 || opts.Nodes > 200 || opts.Slot < 0 || opts.Slot > 255 || opts.PodsPerNode < 0 || opts.PodsPerNode > 200 {
		return nil, fmt.Errorf("network options out of range: %+v", opts)
	}
	p := Plan{Slot: opts.Slot}
	if err := SweepNetwork(p); err != nil {
		return nil, fmt.Errorf("remove leftovers of slot %d: %w", p.Slot, err)
	}
	n := &Network{Plan: p}
	defer func() {
		if err != nil {
			err = errors.Join(err, n.Teardown())
		}
	}()
	if n.Underlay, err = netns.Create(p.UnderlayNS()); err != nil {
		return nil, err
	}
	if err := n.buildUnderlay(); err != nil {
		return nil, fmt.Errorf("underlay: %w", err)
	}
	for i := 1; i <= opts.Nodes; i++ {
		node, err := n.addNode(i)
		if err != nil {
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
		for j := 1; j <= opts.PodsPerNode; j++ {
			if _, err := n.addPod(node, j); err != nil {
				return nil, fmt.Errorf("pod %d on node %d: %w", j, i, err)
			}
		}
	}
	for _, node := range n.Nodes {
		if err := n.baseCNIRoutes(node); err != nil {
			return nil, fmt.Errorf("base routes on %s: %w", node.Name, err)
		}
	}
	return n, nil
}

func (n *Network) buildUnderlay() error {
	ul, err := n.Underlay.Netlink()
	if err != nil {
		return err
	}
	defer ul.Close()
	if err := n.Underlay.Do(func() error { return quietIPv6() }); err != nil {
		return err
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
	if err := ul.LinkAdd(br); err != nil {
		return fmt.Errorf("add bridge: %w", err)
	}
	if err := ul.LinkSetUp(br); err != nil {
		return err
	}
	// The host end carries the controllers' stream address.
	hostName := n.Plan.HostLink()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostName}, PeerName: "host", PeerNamespace: netlink.NsFd(n.Underlay.Handle)}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("add host veth: %w", err)
	}
	if err := enslaveUp(ul, "host", br); err != nil {
		return err
	}
	host, err := netlink.LinkByName(hostName)
	if err != nil {
		return err
	}
	if err := setSysctl(fmt.Sprintf("net/ipv6/conf/%s/accept_dad", hostName), "0"); err != nil {
		return err
	}
	if err := addAddrs(nil, host, netip.PrefixFrom(n.Plan.HostV4(), 24), netip.PrefixFrom(n.Plan.HostV6(), 64)); err != nil {
		return err
	}
	return netlink.LinkSetUp(host)
}

func (n *Network) addNode(i int) (*Node, error) {
	p := n.Plan
	node := &Node{
		Index: i, Name: p.NodeName(i), IPv4: p.NodeV4(i), IPv6: p.NodeV6(i),
		PodV4: p.PodCIDRV4(i), PodV6: p.PodCIDRV6(i), Uplink: uplinkName,
	}
	ns, err := netns.Create(p.NodeNS(i))
	if err != nil {
		return nil, err
	}
	node.NS = ns
	n.Nodes = append(n.Nodes, node)
	if err := ns.Do(func() error {
		if err := quietIPv6(); err != nil {
			return err
		}
		for _, kv := range [][2]string{{"net/ipv4/ip_forward", "1"}, {"net/ipv6/conf/all/forwarding", "1"}} {
			if err := setSysctl(kv[0], kv[1]); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	nh, err := ns.Netlink()
	if err != nil {
		return nil, err
	}
	defer nh.Close()
	ul, err := n.Underlay.Netlink()
	if err != nil {
		return nil, err
	}
	defer ul.Close()

	// Uplink: eth0 in the node, n<i> on the underlay bridge.
	peer := fmt.Sprintf("n%d", i)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: peer, Namespace: netlink.NsFd(n.Underlay.Handle)}, PeerName: uplinkName, PeerNamespace: netlink.NsFd(ns.Handle)}
	if err := netlink.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("add uplink veth: %w", err)
	}
	br, err := ul.LinkByName("br0")
	if err != nil {
		return nil, err
	}
	if err := enslaveUp(ul, peer, br); err != nil {
		return nil, err
	}
	up, err := nh.LinkByName(uplinkName)
	if err != nil {
		return nil, err
	}
	if err := addAddrs(nh, up, netip.PrefixFrom(node.IPv4, 24), netip.PrefixFrom(node.IPv6, 64)); err != nil {
		return nil, err
	}
	if err := nh.LinkSetUp(up); err != nil {
		return nil, err
	}

	// The base CNI bridge, gateway of the node's pods.
	cni := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: bridgeName}}
	if err := nh.LinkAdd(cni); err != nil {
		return nil, fmt.Errorf("add %s: %w", bridgeName, err)
	}
	if err := addAddrs(nh, cni, netip.PrefixFrom(p.GatewayV4(i), 24), netip.PrefixFrom(p.GatewayV6(i), 64)); err != nil {
		return nil, err
	}
	if err := nh.LinkSetUp(cni); err != nil {
		return nil, err
	}
	return node, nil
}

func (n *Network) addPod(node *Node, j int) (*Pod, error) {
	p := n.Plan
	pod := &Pod{
		Name: p.PodName(node.Index, j), Node: node,
		IPv4: p.PodV4(node.Index, j), IPv6: p.PodV6(node.Index, j),
		HostVeth: fmt.Sprintf("%sp%d", PodVethPrefix, j),
	}
	ns, err := netns.Create(p.PodNS(node.Index, j))
	if err != nil {
		return nil, err
	}
	pod.NS = ns
	node.Pods = append(node.Pods, pod)
	if err := ns.Do(quietIPv6); err != nil {
		return nil, err
	}
	nh, err := node.NS.Netlink()
	if err != nil {
		return nil, err
	}
	defer nh.Close()
	ph, err := ns.Netlink()
	if err != nil {
		return nil, err
	}
	defer ph.Close()

	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: pod.HostVeth, Namespace: netlink.NsFd(node.NS.Handle)}, PeerName: podIface, PeerNamespace: netlink.NsFd(ns.Handle)}
	if err := netlink.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("add pod veth: %w", err)
	}
	cni, err := nh.LinkByName(bridgeName)
	if err != nil {
		return nil, err
	}
	if err := enslaveUp(nh, pod.HostVeth, cni); err != nil {
		return nil, err
	}
	eth, err := ph.LinkByName(podIface)
	if err != nil {
		return nil, err
	}
	if err := addAddrs(ph, eth, netip.PrefixFrom(pod.IPv4, 24), netip.PrefixFrom(pod.IPv6, 64)); err != nil {
		return nil, err
	}
	if err := ph.LinkSetUp(eth); err != nil {
		return nil, err
	}
	for _, gw := range []netip.Addr{p.GatewayV4(node.Index), p.GatewayV6(node.Index)} {
		r := &netlink.Route{LinkIndex: eth.Attrs().Index, Gw: gw.AsSlice()}
		if err := ph.RouteAdd(r); err != nil {
			return nil, fmt.Errorf("default route via %s: %w", gw, err)
		}
	}
	return pod, nil
}

// baseCNIRoutes adds the plain routes between nodes that a Flannel-like
// host-gw CNI would: every other node's pod CIDRs via its underlay address.
func (n *Network) baseCNIRoutes(node *Node) error {
	for _, other := range n.Nodes {
		if other != node {
			if err := n.baseCNIRoute(node, other); err != nil {
				return err
			}
		}
	}
	return nil
}

// baseCNIRoute adds, on node, the routes to other's pod CIDRs.
func (n *Network) baseCNIRoute(node, other *Node) error {
	if node == other {
		return nil
	}
	nh, err := node.NS.Netlink()
	if err != nil {
		return err
	}
	defer nh.Close()
	up, err := nh.LinkByName(uplinkName)
	if err != nil {
		return err
	}
	for _, r := range []struct {
		dst netip.Prefix
		gw  netip.Addr
	}{{other.PodV4, other.IPv4}, {other.PodV6, other.IPv6}} {
		route := &netlink.Route{LinkIndex: up.Attrs().Index, Dst: prefixNet(r.dst), Gw: r.gw.AsSlice()}
		if err := nh.RouteAdd(route); err != nil {
			return fmt.Errorf("route on %s to %s via %s: %w", node.Name, r.dst, r.gw, err)
		}
	}
	return nil
}

// removeNode deletes a node's namespaces, its underlay port and the other
// nodes' routes to its pods.
func (n *Network) removeNode(node *Node) error {
	var errs []error
	for _, other := range n.Nodes {
		if other == node {
			continue
		}
		nh, err := other.NS.Netlink()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, dst := range []netip.Prefix{node.PodV4, node.PodV6} {
			_ = nh.RouteDel(&netlink.Route{Dst: prefixNet(dst)})
		}
		nh.Close()
	}
	for _, p := range node.Pods {
		errs = append(errs, p.NS.Delete())
	}
	errs = append(errs, node.NS.Delete())
	if ul, err := n.Underlay.Netlink(); err == nil {
		if l, err := ul.LinkByName(fmt.Sprintf("n%d", node.Index)); err == nil {
			_ = ul.LinkDel(l)
		}
		ul.Close()
	}
	kept := n.Nodes[:0]
	for _, other := range n.Nodes {
		if other != node {
			kept = append(kept, other)
		}
	}
	n.Nodes = kept
	return errors.Join(errs...)
}

// Teardown removes every namespace and link of the network.
func (n *Network) Teardown() error {
	return SweepNetwork(n.Plan)
}

// SweepNetwork removes every namespace and host link of a slot, whoever
// created them: the namespaces are found by name, so leftovers of a
// crashed run go too. Deleting a namespace removes the links in it.
func SweepNetwork(p Plan) error {
	var errs []error
	if l, err := netlink.LinkByName(p.HostLink()); err == nil {
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", p.HostLink(), err))
		}
	}
	entries, err := os.ReadDir("/run/netns")
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), p.Prefix()+"-") {
			names = append(names, e.Name())
		}
	}
	// Processes inside the namespaces (agents, the userspace WireGuard
	// daemons they detach, pings) would keep them alive after their names
	// are gone: end them first. Every one of them is ours, since the
	// namespaces are.
	errs = append(errs, killInNamespaces(names))
	for _, name := range names {
		if err := netns.DeleteNamed(name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// killInNamespaces sends SIGKILL to every process whose network
// namespace is one of the named ones, and waits until they are gone.
func killInNamespaces(names []string) error {
	if len(names) == 0 {
		return nil
	}
	ours := map[uint64]bool{}
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Stat("/run/netns/"+name, &st); err == nil {
			ours[st.Ino] = true
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/ns/net")
	var pids []int
	for _, f := range procs {
		var st unix.Stat_t
		if unix.Stat(f, &st) != nil || !ours[st.Ino] {
			continue
		}
		pid, err := strconv.Atoi(strings.Split(f, "/")[2])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if unix.Kill(pid, unix.SIGKILL) == nil {
			pids = append(pids, pid)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for unix.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// quietIPv6 turns off duplicate address detection and router
// solicitations in the current namespace, so IPv6 addresses work at once.
func quietIPv6() error {
	for _, kv := range [][2]string{
		{"net/ipv6/conf/all/accept_dad", "0"}, {"net/ipv6/conf/default/accept_dad", "0"},
		{"net/ipv6/conf/all/router_solicitations", "0"}, {"net/ipv6/conf/default/router_solicitations", "0"},
	} {
		if err := setSysctl(kv[0], kv[1]); err != nil {
			return err
		}
	}
	return nil
}

// setSysctl writes a sysctl of the calling thread's network namespace.
func setSysctl(name, value string) error {
	path := filepath.Join("/proc/sys", name)
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", name, value, err)
	}
	return nil
}

func enslaveUp(h *netlink.Handle, name string, master netlink.Link) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return err
	}
	if err := h.LinkSetMaster(l, master); err != nil {
		return fmt.Errorf("attach %s to %s: %w", name, master.Attrs().Name, err)
	}
	return h.LinkSetUp(l)
}

// addAddrs adds addresses without duplicate address detection. A nil
// handle means the host namespace.
func addAddrs(h *netlink.Handle, l netlink.Link, prefixes ...netip.Prefix) error {
	if h == nil {
		h = &netlink.Handle{}
	}
	for _, pfx := range prefixes {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: pfx.Addr().AsSlice(), Mask: net.CIDRMask(pfx.Bits(), pfx.Addr().BitLen())}}
		if pfx.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(l, a); err != nil {
			return fmt.Errorf("address %s on %s: %w", pfx, l.Attrs().Name, err)
		}
	}
	return nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Masked().Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
