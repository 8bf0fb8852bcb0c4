package sim

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// CaptureStats classifies what crossed the underlay during a capture.
type CaptureStats struct {
	// Cleartext counts packets whose source or destination is a pod
	// address: pod traffic that was not encrypted.
	Cleartext int
	// WireGuard counts UDP packets to or from the WireGuard ports.
	WireGuard int
	// Other counts everything else (control traffic, ARP, ND).
	Other int
	// Samples holds up to 10 cleartext lines, for the test log.
	Samples []string
}

// Capture runs tcpdump on the underlay bridge.
type Capture struct {
	cmd     *exec.Cmd
	done    chan struct{}
	mu      sync.Mutex
	stats   CaptureStats
	pods    []netip.Prefix
	wgPorts map[string]bool
}

// StartCapture starts tcpdump on the underlay bridge of a network and
// returns once it is capturing. pods are the prefixes whose addresses mark
// a packet as pod traffic; wgPorts are the WireGuard UDP ports.
func StartCapture(ctx context.Context, underlayNS string, pods []netip.Prefix, wgPorts ...int) (*Capture, error) {
	c := &Capture{done: make(chan struct{}), pods: pods, wgPorts: map[string]bool{}}
	for _, p := range wgPorts {
		c.wgPorts[fmt.Sprint(p)] = true
	}
	// -nn: no name or port lookups; -l: line buffered; -q: short lines.
	// Promiscuous mode (the default) matters: only then does a bridge
	// pass copies of the frames it forwards between ports to the capture.
	c.cmd = exec.Command("ip", "netns", "exec", underlayNS, "tcpdump", "-i", "br0", "-nn", "-l", "-q")
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start tcpdump: %w", err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	go c.read(stdout)
	select {
	case <-ready:
		return c, nil
	case <-c.done:
		return nil, fmt.Errorf("tcpdump exited before capturing")
	case <-time.After(10 * time.Second):
		c.Stop()
		return nil, fmt.Errorf("tcpdump did not start capturing within 10s")
	case <-ctx.Done():
		c.Stop()
		return nil, ctx.Err()
	}
}

func (c *Capture) read(r io.Reader) {
	defer close(c.done)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		kind := c.classify(line)
		c.mu.Lock()
		switch kind {
		case "cleartext":
			c.stats.Cleartext++
			if len(c.stats.Samples) < 10 {
				c.stats.Samples = append(c.stats.Samples, line)
			}
		case "wireguard":
			c.stats.WireGuard++
		default:
			c.stats.Other++
		}
		c.mu.Unlock()
	}
}

// classify reads one line of `tcpdump -nn -q`, such as
// "12:00:00.000000 IP 100.64.1.11.47000 > 100.64.3.12.47000: UDP, length 8".
func (c *Capture) classify(line string) string {
	f := strings.Fields(line)
	if len(f) < 5 || (f[1] != "IP" && f[1] != "IP6") || f[3] != ">" {
		return "other"
	}
	src, sport := splitHostPort(f[2])
	dst, dport := splitHostPort(strings.TrimSuffix(f[4], ":"))
	for _, p := range c.pods {
		if (src.IsValid() && p.Contains(src)) || (dst.IsValid() && p.Contains(dst)) {
			return "cleartext"
		}
	}
	if strings.Contains(line, "UDP") && (c.wgPorts[sport] || c.wgPorts[dport]) {
		return "wireguard"
	}
	return "other"
}

// splitHostPort splits tcpdump's "addr.port" (the port may be absent).
func splitHostPort(tok string) (netip.Addr, string) {
	if a, err := netip.ParseAddr(tok); err == nil {
		return a, ""
	}
	i := strings.LastIndexByte(tok, '.')
	if i < 0 {
		return netip.Addr{}, ""
	}
	a, err := netip.ParseAddr(tok[:i])
	if err != nil {
		return netip.Addr{}, ""
	}
	return a, tok[i+1:]
}

// Stats returns what was captured so far.
func (c *Capture) Stats() CaptureStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Samples = append([]string(nil), s.Samples...)
	return s
}

// Stop ends tcpdump, waits until its last line is read, and returns the
// statistics.
func (c *Capture) Stop() CaptureStats {
	if c.cmd.Process != nil {
		_ = c.cmd.Process.Signal(syscall.SIGINT)
	}
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	_ = c.cmd.Wait()
	return c.Stats()
}
