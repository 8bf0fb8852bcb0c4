package sim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/lumbrjx/vpblu/nodeagent/route"
)

// HandWGInterface is the default name of a hand-configured tunnel.
const HandWGInterface = "wg-hand"

// HandWGOptions shape a hand-configured WireGuard pair.
type HandWGOptions struct {
	// Interface names the interface on both nodes (default
	// HandWGInterface).
	Interface string
	// ListenPort is its UDP port on both nodes (default the cluster's
	// ListenPort + 10, clear of wg-mesh and of wg-rot at ListenPort + 1).
	ListenPort int
	// MTU is the interface MTU (default what vpblu gives wg-mesh: the
	// uplink's MTU minus route.DefaultMTUOverhead).
	MTU int
}

// HandWG is a WireGuard tunnel between two nodes set up the way an
// operator would without vpblu: one interface per node on the cluster's
// backend, one peer each (endpoint the other node's underlay IPv4,
// allowed IPs its IPv4 pod CIDR), and the main table's route to the other
// node's pod CIDR pointed at the interface instead of the base CNI's
// gateway. It is the baseline vpblu is measured against.
//
// Run it only while vpblu is off (Cluster.UninstallAgents): vpblu's
// fwmark rule would otherwise take the pods' traffic before the main
// table sees it.
type HandWG struct {
	c    *Cluster
	opts HandWGOptions
	ends [2]*Node
	devs map[string]*Proc // userspace device processes by node
	up   bool
}

// NewHandWG returns a (down) hand-configured pair between nodes a and b.
func (c *Cluster) NewHandWG(a, b string, opts HandWGOptions) (*HandWG, error) {
	na, nb := c.node(a), c.node(b)
	if na == nil || nb == nil || na == nb {
		return nil, fmt.Errorf("hand-configured pair needs two distinct nodes, got %q and %q", a, b)
	}
	if opts.Interface == "" {
		opts.Interface = HandWGInterface
	}
	if opts.Interface == TunnelInterface {
		return nil, fmt.Errorf("hand-configured pair may not use vpblu's %s", TunnelInterface)
	}
	if opts.ListenPort == 0 {
		opts.ListenPort = c.opts.ListenPort + 10
	}
	return &HandWG{c: c, opts: opts, ends: [2]*Node{na, nb}, devs: map[string]*Proc{}}, nil
}

// Interface is the name of the pair's interface on both nodes.
func (h *HandWG) Interface() string { return h.opts.Interface }

// Up creates and configures the interfaces and points the routes at them.
// On error, whatever it made is removed again.
func (h *HandWG) Up(ctx context.Context) (err error) {
	if h.up {
		return nil
	}
	h.up = true
	defer func() {
		if err != nil {
			err = errors.Join(err, h.Down(ctx))
		}
	}()
	mtu := h.opts.MTU
	if mtu == 0 {
		if mtu, err = uplinkMTU(h.ends[0]); err != nil {
			return err
		}
		mtu -= route.DefaultMTUOverhead
	}
	for _, n := range h.ends {
		if err := h.createInterface(ctx, n, mtu); err != nil {
			return fmt.Errorf("%s on %s: %w", h.opts.Interface, n.Name, err)
		}
	}
	// The private keys live in a 0700 directory only until wg(8) has
	// loaded them.
	dir, err := os.MkdirTemp("", "vpblu-handwg-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var pubs [2]string
	var privFiles [2]string
	for i, n := range h.ends {
		priv, err := runArgv(ctx, []string{"wg", "genkey"})
		if err != nil {
			return fmt.Errorf("wg genkey: %w", err)
		}
		privFiles[i] = filepath.Join(dir, n.Name+".key")
		if err := os.WriteFile(privFiles[i], []byte(priv), 0o600); err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, "wg", "pubkey")
		cmd.Stdin = strings.NewReader(priv)
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("wg pubkey: %w", err)
		}
		pubs[i] = strings.TrimSpace(string(out))
	}
	for i, n := range h.ends {
		other := h.ends[1-i]
		port := strconv.Itoa(h.opts.ListenPort)
		if err := h.inNode(ctx, n, "wg", "set", h.opts.Interface,
			"listen-port", port, "private-key", privFiles[i],
			"peer", pubs[1-i], "endpoint", other.IPv4.String()+":"+port,
			"allowed-ips", other.PodV4.String()); err != nil {
			return err
		}
	}
	for i, n := range h.ends {
		if err := h.routeToTunnel(n, h.ends[1-i]); err != nil {
			return err
		}
	}
	return nil
}

// Down restores the base CNI's routes and removes the interfaces (and
// their device processes). It is idempotent and does all it can before
// reporting errors.
func (h *HandWG) Down(ctx context.Context) error {
	if !h.up {
		return nil
	}
	var errs []error
	for i, n := range h.ends {
		if err := restoreBaseRoute(n, h.ends[1-i]); err != nil {
			errs = append(errs, err)
		}
	}
	for _, n := range h.ends {
		if p := h.devs[n.Name]; p != nil {
			// RunDevice removes the TUN and its socket on SIGTERM.
			_ = p.Stop(syscall.SIGTERM, 5*time.Second)
			delete(h.devs, n.Name)
		}
		if err := deleteLink(n, h.opts.Interface); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	h.up = false
	return nil
}

// createInterface makes the interface on n on the cluster's backend: a
// kernel link, or a wireguard-go device process run by the agent binary
// exactly as the agent runs wg-mesh's.
func (h *HandWG) createInterface(ctx context.Context, n *Node, mtu int) error {
	name := h.opts.Interface
	switch h.c.opts.Backend {
	case "kernel":
		if err := h.inNode(ctx, n, "ip", "link", "add", name, "type", "wireguard"); err != nil {
			return err
		}
		return h.inNode(ctx, n, "ip", "link", "set", name, "mtu", strconv.Itoa(mtu), "up")
	case "userspace":
		argv, err := h.c.inNode(n.Name, h.c.bins.Agent, "wireguard-go", name, strconv.Itoa(mtu))
		if err != nil {
			return err
		}
		p, err := startDevice(h.c.opts.RunDir, n.Name+"-"+name, argv)
		if err != nil {
			return err
		}
		h.devs[n.Name] = p
		// Ready once its UAPI socket answers wg(8).
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			err := h.inNode(ctx, n, "wg", "show", name)
			if err == nil {
				return nil
			}
			if !p.Running() {
				return fmt.Errorf("device process exited: %s", p.Tail(2000))
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("device process not ready after 10s: %w", err)
			}
		}
	default:
		return fmt.Errorf("backend %q: want kernel or userspace", h.c.opts.Backend)
	}
}

// startDevice starts a userspace device process the way the agent starts
// wg-mesh's (nodeagent/wg.UserspaceBackend.spawn): detached in a session
// of its own. Where the process runs matters on a busy machine: with
// autogroup scheduling (kernel.sched_autogroup_enabled) every session is
// a scheduling group, and a pair sharing the simulator's session with
// iperf3 measured about 1.5 times as fast as the same pair in sessions of
// their own, on a 2-core machine under load. A baseline placed unlike
// wg-mesh would measure that, not vpblu. Unlike the agent's devices it
// still ends with the simulator (Pdeathsig); its output goes to
// runDir/name.log.
func startDevice(runDir, name string, argv []string) (*Proc, error) {
	logPath := filepath.Join(runDir, name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// A session leader leads its process group too, so Proc.Stop's
	// signal to the group reaches it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	if err := spawn(cmd); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, Log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

func (h *HandWG) inNode(ctx context.Context, n *Node, argv ...string) error {
	full, err := h.c.inNode(n.Name, argv...)
	if err != nil {
		return err
	}
	if out, err := runArgv(ctx, full); err != nil {
		return fmt.Errorf("%s on %s: %w: %s", strings.Join(argv[:min(3, len(argv))], " "), n.Name, err, strings.TrimSpace(out))
	}
	return nil
}

// routeToTunnel replaces n's main-table route to other's IPv4 pod CIDR
// with one through the interface.
func (h *HandWG) routeToTunnel(n, other *Node) error {
	nh, err := n.NS.Netlink()
	if err != nil {
		return err
	}
	defer nh.Close()
	l, err := nh.LinkByName(h.opts.Interface)
	if err != nil {
		return err
	}
	r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: prefixNet(other.PodV4)}
	if err := nh.RouteReplace(r); err != nil {
		return fmt.Errorf("route on %s to %s via %s: %w", n.Name, other.PodV4, h.opts.Interface, err)
	}
	return nil
}

// restoreBaseRoute puts back n's route to other's IPv4 pod CIDR as the
// base CNI made it (baseCNIRoute): via other's underlay address on the
// uplink.
func restoreBaseRoute(n, other *Node) error {
	nh, err := n.NS.Netlink()
	if err != nil {
		return err
	}
	defer nh.Close()
	up, err := nh.LinkByName(uplinkName)
	if err != nil {
		return err
	}
	r := &netlink.Route{LinkIndex: up.Attrs().Index, Dst: prefixNet(other.PodV4), Gw: other.IPv4.AsSlice()}
	if err := nh.RouteReplace(r); err != nil {
		return fmt.Errorf("restore route on %s to %s via %s: %w", n.Name, other.PodV4, other.IPv4, err)
	}
	return nil
}

// deleteLink deletes link name in n's namespace; a missing link is fine.
func deleteLink(n *Node, name string) error {
	nh, err := n.NS.Netlink()
	if err != nil {
		return err
	}
	defer nh.Close()
	l, err := nh.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := nh.LinkDel(l); err != nil {
		return fmt.Errorf("delete %s on %s: %w", name, n.Name, err)
	}
	return nil
}

func uplinkMTU(n *Node) (int, error) {
	nh, err := n.NS.Netlink()
	if err != nil {
		return 0, err
	}
	defer nh.Close()
	l, err := nh.LinkByName(uplinkName)
	if err != nil {
		return 0, err
	}
	return l.Attrs().MTU, nil
}

// LinkMTU returns the MTU of a link in a node's namespace.
func (c *Cluster) LinkMTU(node, link string) (int, error) {
	n := c.node(node)
	if n == nil {
		return 0, fmt.Errorf("no node %s", node)
	}
	nh, err := n.NS.Netlink()
	if err != nil {
		return 0, err
	}
	defer nh.Close()
	l, err := nh.LinkByName(link)
	if err != nil {
		return 0, fmt.Errorf("%s on %s: %w", link, node, err)
	}
	return l.Attrs().MTU, nil
}

// WGTransfer returns the bytes a node's WireGuard interface has received
// from and sent to all its peers (`wg show IFACE transfer`).
func (c *Cluster) WGTransfer(ctx context.Context, node, iface string) (rx, tx uint64, err error) {
	argv, err := c.inNode(node, "wg", "show", iface, "transfer")
	if err != nil {
		return 0, 0, err
	}
	out, err := runArgv(ctx, argv)
	if err != nil {
		return 0, 0, fmt.Errorf("wg show %s transfer on %s: %w: %s", iface, node, err, strings.TrimSpace(out))
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		f := strings.Fields(l)
		if len(f) != 3 {
			return 0, 0, fmt.Errorf("wg show %s transfer on %s: line %q", iface, node, l)
		}
		r, err1 := strconv.ParseUint(f[1], 10, 64)
		t, err2 := strconv.ParseUint(f[2], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return 0, 0, fmt.Errorf("wg show %s transfer on %s: %w", iface, node, err)
		}
		rx, tx = rx+r, tx+t
	}
	return rx, tx, nil
}
