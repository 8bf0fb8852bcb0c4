package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lumbrjx/vpblu/e2e"
	"github.com/lumbrjx/vpblu/tools/netns"
)

// ---- traffic ----

// Ping runs ping in a pod.
func (c *Cluster) Ping(ctx context.Context, from e2e.Pod, to netip.Addr, args ...string) (string, error) {
	p := c.pod(from.Name)
	if p == nil {
		return "", fmt.Errorf("no pod %s", from.Name)
	}
	return InNS(ctx, p.NS.Name, "ping", append(args, to.String())...)
}

type flowAdapter struct{ f *Flow }

func (a flowAdapter) Stop(grace time.Duration) e2e.FlowStats { return toE2E(a.f.Stop(grace)) }
func (a flowAdapter) Stats() e2e.FlowStats                   { return toE2E(a.f.Stats()) }

func toE2E(s FlowStats) e2e.FlowStats {
	return e2e.FlowStats{Sent: s.Sent, Received: s.Received, Lost: s.Lost, Duplicates: s.Duplicates, LongestGap: s.LongestGap,
		LastReceived: s.LastReceived, SendErrors: s.SendErrors, LastSendError: s.LastSendError, ReceiverDrops: s.ReceiverDrops, FirstLost: s.FirstLost}
}

// StartFlow starts a sequence-numbered UDP flow between two pods.
func (c *Cluster) StartFlow(from, to e2e.Pod, dst netip.Addr, rate int) (e2e.Flow, error) {
	src, dstPod := c.pod(from.Name), c.pod(to.Name)
	if src == nil || dstPod == nil {
		return nil, fmt.Errorf("no pods %s, %s", from.Name, to.Name)
	}
	srcAddr := src.IPv4
	if dst.Is6() {
		srcAddr = src.IPv6
	}
	f, err := StartFlow(src.NS, srcAddr, dstPod.NS, dst, rate)
	if err != nil {
		return nil, err
	}
	return flowAdapter{f}, nil
}

type captureAdapter struct{ c *Capture }

func (a captureAdapter) Stop() e2e.CaptureStats  { return toE2ECapture(a.c.Stop()) }
func (a captureAdapter) Stats() e2e.CaptureStats { return toE2ECapture(a.c.Stats()) }

func toE2ECapture(s CaptureStats) e2e.CaptureStats {
	return e2e.CaptureStats{Cleartext: s.Cleartext, WireGuard: s.WireGuard, Other: s.Other, Samples: s.Samples}
}

// StartCapture captures the underlay bridge.
func (c *Cluster) StartCapture(ctx context.Context) (e2e.Capture, error) {
	p := c.Net.Plan
	cp, err := StartCapture(ctx, p.UnderlayNS(), []netip.Prefix{p.ClusterV4(), p.ClusterV6()}, c.opts.ListenPort, c.opts.ListenPort+1)
	if err != nil {
		return nil, err
	}
	return captureAdapter{cp}, nil
}

// Iperf runs iperf3 (TCP) from one pod to another for d and returns the
// receiver's throughput in bits per second.
func (c *Cluster) Iperf(ctx context.Context, from, to e2e.Pod, dst netip.Addr, d time.Duration) (float64, error) {
	src, dstPod := c.pod(from.Name), c.pod(to.Name)
	if src == nil || dstPod == nil {
		return 0, fmt.Errorf("no pods %s, %s", from.Name, to.Name)
	}
	return iperf(ctx, src.NS.Name, dstPod.NS.Name, dst, iperfPort, d)
}

// iperfPort is Iperf's server port; IperfPaced uses its own so both may
// run at once.
const iperfPort = "5201"

// iperf runs an iperf3 server (one test) on port in dstNS and a client in
// srcNS with the extra client arguments (e.g. "-b" to pace it).
func iperf(ctx context.Context, srcNS, dstNS string, dst netip.Addr, port string, d time.Duration, extra ...string) (float64, error) {
	server := exec.CommandContext(ctx, "ip", "netns", "exec", dstNS, "iperf3", "-s", "-1", "-B", dst.String(), "-p", port)
	var serverOut bytes.Buffer
	server.Stdout, server.Stderr = &serverOut, &serverOut
	if err := server.Start(); err != nil {
		return 0, fmt.Errorf("start iperf3 server: %w", err)
	}
	defer func() { _ = server.Process.Kill(); _ = server.Wait() }()
	// Start the client only once the server listens: a refused connection
	// would otherwise be indistinguishable from a broken path.
	listening := false
	for i := 0; i < 100 && !listening; i++ {
		ss, _ := InNS(ctx, dstNS, "ss", "-Hltn", "sport = :"+port)
		listening = strings.Contains(ss, "LISTEN")
		if !listening {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if !listening {
		return 0, fmt.Errorf("iperf3 server in %s never listened on %s port %s: %s", dstNS, dst, port, serverOut.String())
	}
	args := append([]string{"-c", dst.String(), "-p", port, "-t", strconv.Itoa(max(int(d.Seconds()), 1)), "-J"}, extra...)
	out, err := InNS(ctx, srcNS, "iperf3", args...)
	if err != nil && !strings.HasPrefix(strings.TrimSpace(out), "{") {
		return 0, fmt.Errorf("iperf3 client: %w\nserver: %s", err, serverOut.String())
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		return 0, fmt.Errorf("iperf3 output: %w", err)
	}
	if res.Error != "" {
		return 0, fmt.Errorf("iperf3: %s (server: %s)", res.Error, strings.TrimSpace(serverOut.String()))
	}
	if err != nil {
		return 0, fmt.Errorf("iperf3 client: %w", err)
	}
	return res.End.SumReceived.BitsPerSecond, nil
}

// ---- node state ----

// WireGuard returns a node's mesh peers from `wg show <iface> dump`, run
// in the node's namespaces. The dump's first line holds the interface's
// private key: it is dropped unread.
func (c *Cluster) WireGuard(ctx context.Context, node string) ([]e2e.WGPeer, error) {
	argv, err := c.inNode(node, "wg", "show", TunnelInterface, "dump")
	if err != nil {
		return nil, err
	}
	out, err := runArgv(ctx, argv)
	if err != nil {
		if strings.Contains(out, "No such device") || strings.Contains(out, "Unable to access interface") {
			return nil, nil
		}
		return nil, fmt.Errorf("wg show on %s: %w", node, err)
	}
	return parseWGDump(out)
}

func parseWGDump(out string) ([]e2e.WGPeer, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var peers []e2e.WGPeer
	for _, l := range lines[min(1, len(lines)):] {
		f := strings.Split(l, "\t")
		if len(f) < 8 {
			return nil, fmt.Errorf("wg dump peer line has %d fields", len(f))
		}
		p := e2e.WGPeer{PublicKey: f[0]}
		if f[2] != "(none)" {
			p.Endpoint = f[2]
		}
		if f[3] != "(none)" {
			p.AllowedIPs = strings.Split(f[3], ",")
		}
		if hs, _ := strconv.ParseInt(f[4], 10, 64); hs > 0 {
			p.LastHandshake = time.Unix(hs, 0)
		}
		p.RxBytes, _ = strconv.ParseUint(f[5], 10, 64)
		p.TxBytes, _ = strconv.ParseUint(f[6], 10, 64)
		peers = append(peers, p)
	}
	return peers, nil
}

// DataPlane renders a node's data plane as stable text: policy rules,
// routes of every table, WireGuard peers (keys, endpoints, allowed IPs;
// no counters or handshake times), nftables and the agent's eBPF map
// entries (`vpblu-agent dump`).
func (c *Cluster) DataPlane(ctx context.Context, node string) (string, error) {
	n := c.node(node)
	if n == nil {
		return "", fmt.Errorf("no node %s", node)
	}
	var b strings.Builder
	for _, cmd := range [][]string{
		{"ip", "-4", "rule", "show"}, {"ip", "-6", "rule", "show"},
		{"ip", "-4", "route", "show", "table", "all"}, {"ip", "-6", "route", "show", "table", "all"},
		{"ip", "-d", "link", "show", TunnelInterface},
		{"nft", "list", "table", "inet", "vpblu"},
		{"tc", "filter", "show", "dev", "vethp1", "ingress"},
	} {
		argv, err := c.inNode(node, cmd...)
		if err != nil {
			return "", err
		}
		out, err := runArgv(ctx, argv)
		if err != nil {
			out = "error: " + err.Error()
		}
		fmt.Fprintf(&b, "# %s\n%s\n", strings.Join(cmd, " "), stableLink(out))
	}
	peers, err := c.WireGuard(ctx, node)
	if err != nil {
		return "", err
	}
	// wireguard-go lists peers in map order, so the set is what is compared.
	lines := make([]string, 0, len(peers))
	for _, p := range peers {
		lines = append(lines, fmt.Sprintf("%s %s %s\n", p.PublicKey, p.Endpoint, strings.Join(p.AllowedIPs, ",")))
	}
	sort.Strings(lines)
	b.WriteString("# wg peers\n" + strings.Join(lines, ""))
	argv, err := c.inNode(node, c.bins.Agent, "dump", "--state-dir", c.nodeDir(node)+"/state")
	if err != nil {
		return "", err
	}
	out, err := runArgv(ctx, argv)
	if err != nil {
		return "", fmt.Errorf("vpblu-agent dump on %s: %w\n%s", node, err, out)
	}
	b.WriteString("# vpblu-agent dump\n" + out)
	return b.String(), nil
}

// stableLink drops the counters and volatile fields of `ip link` output.
func stableLink(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "RX:") || strings.Contains(l, "TX:") {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// ---- membership ----

// AddNode adds a node (with pods, base routes, Kubernetes objects and an
// agent) to the running cluster.
func (c *Cluster) AddNode(ctx context.Context) (e2e.Node, error) {
	i := 1
	for _, n := range c.Net.Nodes {
		i = max(i, n.Index+1)
	}
	n, err := c.Net.addNode(i)
	if err != nil {
		return e2e.Node{}, err
	}
	for j := 1; j <= c.opts.PodsPerNode; j++ {
		if _, err := c.Net.addPod(n, j); err != nil {
			return e2e.Node{}, err
		}
	}
	for _, other := range c.Net.Nodes {
		if err := c.Net.baseCNIRoute(other, n); err != nil && !errors.Is(err, syscall.EEXIST) {
			return e2e.Node{}, err
		}
		if other != n {
			if err := c.Net.baseCNIRoute(n, other); err != nil && !errors.Is(err, syscall.EEXIST) {
				return e2e.Node{}, err
			}
		}
	}
	if err := registerNode(ctx, c.cs, n); err != nil {
		return e2e.Node{}, err
	}
	if err := c.startAgent(ctx, n); err != nil {
		return e2e.Node{}, err
	}
	if err := c.waitAgentHealthy(ctx, n); err != nil {
		return e2e.Node{}, err
	}
	return e2e.Node{Name: n.Name, IPv4: n.IPv4, IPv6: n.IPv6}, nil
}

// RemoveNode stops a node's agent, deletes its Node and Pod objects and
// removes its namespaces and the other nodes' routes to it.
func (c *Cluster) RemoveNode(ctx context.Context, name string) error {
	n := c.node(name)
	if n == nil {
		return fmt.Errorf("no node %s", name)
	}
	c.mu.Lock()
	agent, holder := c.agents[name], c.holders[name]
	delete(c.agents, name)
	delete(c.holders, name)
	c.mu.Unlock()
	for _, p := range []*Proc{agent, holder} {
		if p != nil {
			_ = p.Stop(syscall.SIGTERM, 10*time.Second)
		}
	}
	if err := c.cs.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		return fmt.Errorf("delete node %s: %w", name, err)
	}
	for _, p := range n.Pods {
		_ = c.cs.CoreV1().Pods(PodNamespace).Delete(ctx, p.Name, metav1.DeleteOptions{})
	}
	_ = c.cs.CoreV1().Pods(SystemNamespace).Delete(ctx, AgentPodName(name), metav1.DeleteOptions{})
	// The agent leaves its data plane running when it stops (userspace
	// WireGuard is a process of its own): end everything in the node's
	// namespaces before they go, or it outlives them unnamed.
	names := []string{n.NS.Name}
	for _, p := range n.Pods {
		names = append(names, p.NS.Name)
	}
	if err := killInNamespaces(names); err != nil {
		return fmt.Errorf("remove node %s: %w", name, err)
	}
	return c.Net.removeNode(n)
}

// ---- helpers ----

func runArgv(ctx context.Context, argv []string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// httpGetInNS sends a GET from inside a network namespace and returns an
// error unless the answer is 200.
func httpGetInNS(ctx context.Context, ns netns.NS, url string) error {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		err := ns.Do(func() error {
			var err error
			conn, err = (&net.Dialer{Timeout: time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return conn, err
	}
	cl := &http.Client{Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}, Timeout: 2 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := cl.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

// detectBackend returns "kernel" when a WireGuard link can be created in a
// throwaway namespace, else "userspace".
func detectBackend() string {
	ns, err := netns.Create(fmt.Sprintf("vpblu-wgprobe-%d", time.Now().UnixNano()%100000))
	if err != nil {
		return "userspace"
	}
	defer ns.Delete()
	h, err := ns.Netlink()
	if err != nil {
		return "userspace"
	}
	defer h.Close()
	link := &netlink.GenericLink{LinkAttrs: netlink.LinkAttrs{Name: "wgprobe"}, LinkType: "wireguard"}
	if err := h.LinkAdd(link); err != nil {
		return "userspace"
	}
	_ = h.LinkDel(link)
	return "kernel"
}

// KubectlVpblu runs `kubectl vpblu args...` as a user would: kubectl finds
// the plugin on PATH, and both read KUBECONFIG.
func (c *Cluster) KubectlVpblu(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.Env.Assets, "kubectl"), append([]string{"vpblu"}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig(), "PATH="+filepath.Dir(c.bins.Plugin)+":"+os.Getenv("PATH"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl vpblu %s: %w", strings.Join(args, " "), err)
	}
	return out.String(), nil
}
