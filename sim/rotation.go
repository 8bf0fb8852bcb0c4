package sim

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lumbrjx/vpblu/e2e"
)

// KillAgent kills a node's agent with SIGKILL and leaves it stopped. The
// userspace WireGuard daemons it spawned run in sessions of their own and
// keep forwarding, as the kernel's interfaces would.
func (c *Cluster) KillAgent(ctx context.Context, node string) error {
	if c.node(node) == nil {
		return fmt.Errorf("no node %s", node)
	}
	c.mu.Lock()
	p := c.agents[node]
	c.mu.Unlock()
	if p == nil || !p.Running() {
		return fmt.Errorf("the agent of %s is not running", node)
	}
	return p.Stop(syscall.SIGKILL, 5*time.Second)
}

// StartAgent starts a node's agent unless it runs, and waits until it
// has installed its data plane.
func (c *Cluster) StartAgent(ctx context.Context, node string) error {
	n := c.node(node)
	if n == nil {
		return fmt.Errorf("no node %s", node)
	}
	if err := c.startAgent(ctx, n); err != nil {
		return err
	}
	return c.waitAgentHealthy(ctx, n)
}

// KeyFiles reads the private key files (key-<generation>.key) in a node
// agent's state directory.
func (c *Cluster) KeyFiles(ctx context.Context, node string) (map[string][]byte, error) {
	if c.node(node) == nil {
		return nil, fmt.Errorf("no node %s", node)
	}
	dir := filepath.Join(c.nodeDir(node), "state")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("key files of %s: %w", node, err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		if name := e.Name(); strings.HasPrefix(name, "key-") && strings.HasSuffix(name, ".key") {
			raw, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				return nil, fmt.Errorf("key files of %s: %w", node, err)
			}
			out[name] = raw
		}
	}
	return out, nil
}

// pacedIperfPort is the port of IperfPaced's servers, apart from Iperf's
// so both may run at once.
const pacedIperfPort = "5202"

// IperfPaced runs an iperf3 TCP transfer whose sender is paced to
// bitsPerSecond (iperf3 -b) and returns the receiver's throughput.
func (c *Cluster) IperfPaced(ctx context.Context, from, to e2e.Pod, dst netip.Addr, d time.Duration, bitsPerSecond int) (float64, error) {
	src, dstPod := c.pod(from.Name), c.pod(to.Name)
	if src == nil || dstPod == nil {
		return 0, fmt.Errorf("no pods %s, %s", from.Name, to.Name)
	}
	return iperf(ctx, src.NS.Name, dstPod.NS.Name, dst, pacedIperfPort, d, "-b", strconv.Itoa(bitsPerSecond))
}
