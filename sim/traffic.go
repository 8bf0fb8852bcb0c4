package sim

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lumbrjx/vpblu/tools/netns"
)

// FlowStats counts one direction of a sequence-numbered UDP flow.
type FlowStats struct {
	Sent       uint64
	Received   uint64
	Lost       uint64 // sequence numbers sent but never received
	Duplicates uint64
	// LongestGap is the longest run of consecutive lost sequence numbers,
	// times the send interval: how long the flow was cut, at worst.
	LongestGap time.Duration
	// LastReceived is when the last datagram arrived.
	LastReceived time.Time
	// SendErrors counts sends the sender's kernel refused (each is also a
	// lost datagram) and LastSendError says why, so a loss at the source
	// is told apart from a loss on the path.
	SendErrors    uint64
	LastSendError string
	// ReceiverDrops is how many UDP datagrams the receiving namespace
	// dropped for want of socket buffer while the flow ran (any socket):
	// a loss caused by a starved receiver, not by the path.
	ReceiverDrops uint64
	// FirstLost holds the first few lost sequence numbers (0 is the
	// flow's first datagram), which tell a warm-up loss from a cut.
	FirstLost []uint64
}

func (s FlowStats) String() string {
	return fmt.Sprintf("sent=%d received=%d lost=%d dup=%d longest-gap=%s send-errors=%d receiver-drops=%d",
		s.Sent, s.Received, s.Lost, s.Duplicates, s.LongestGap, s.SendErrors, s.ReceiverDrops)
}

// Flow sends sequence-numbered UDP datagrams from one namespace to an
// address in another at a fixed rate, and records which arrive.
type Flow struct {
	interval time.Duration
	send     *net.UDPConn
	recv     *net.UDPConn
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	sent     atomic.Uint64
	mu       sync.Mutex
	seen     []bool
	received uint64
	dups     uint64
	lastRecv time.Time
	sendErr  error
	sendErrs uint64
	dstNS    netns.NS
	// drops0 is the receiving namespace's UDP buffer drops at the start.
	drops0 uint64
}

// flowReadBuffer is the receive buffer of a flow's socket (capped by
// net.core.rmem_max).
const flowReadBuffer = 4 << 20

// flowPorts hands each flow its own destination port, so any number of
// flows may share a destination address. The ports lie below the
// kernel's ephemeral range (32768-60999): a sender in the same pod, bound
// to an ephemeral port, once took a receiver's port ("address already in
// use").
var flowPorts atomic.Uint32

func nextFlowPort() int { return 20000 + int(flowPorts.Add(1)%10000) }

// StartFlow starts a flow of rate datagrams per second from src (inside
// srcNS) to dst (inside dstNS). The sockets are created inside the
// namespaces, so the traffic is exactly what pods there would send.
func StartFlow(srcNS netns.NS, src netip.Addr, dstNS netns.NS, dst netip.Addr, rate int) (*Flow, error) {
	if rate <= 0 || rate > 100000 {
		return nil, fmt.Errorf("flow rate %d out of range", rate)
	}
	f := &Flow{interval: time.Second / time.Duration(rate), dstNS: dstNS}
	f.drops0, _ = udpBufferDrops(dstNS)
	port := uint16(nextFlowPort())
	err := dstNS.Do(func() error {
		var err error
		f.recv, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, port)))
		if err != nil {
			return err
		}
		// The receiver is a goroutine of the test process, which a busy
		// machine can stall for longer than the default buffer (about
		// 270 small datagrams) lasts: a datagram dropped there was not
		// lost on the path. A few seconds' worth is kept instead.
		if err := f.recv.SetReadBuffer(flowReadBuffer); err != nil {
			f.recv.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("flow receiver on %s: %w", dst, err)
	}
	err = srcNS.Do(func() error {
		var err error
		f.send, err = net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, port)))
		return err
	})
	if err != nil {
		f.recv.Close()
		return nil, fmt.Errorf("flow sender on %s: %w", src, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	f.wg.Add(2)
	go f.receive()
	go f.transmit(ctx)
	return f, nil
}

func (f *Flow) transmit(ctx context.Context) {
	defer f.wg.Done()
	// Send in 1 ms batches so the rate holds even when the scheduler is
	// late: each tick sends what the clock says is due.
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	buf := make([]byte, 64)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			due := uint64(now.Sub(start) / f.interval)
			for f.sent.Load() < due {
				seq := f.sent.Load()
				binary.BigEndian.PutUint64(buf, seq)
				if _, err := f.send.Write(buf); err != nil && !errors.Is(err, net.ErrClosed) {
					// A refused or unreachable send is a lost datagram,
					// not the end of the flow.
					f.mu.Lock()
					f.sendErr = err
					f.sendErrs++
					f.mu.Unlock()
				}
				f.sent.Add(1)
			}
		}
	}
}

func (f *Flow) receive() {
	defer f.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, err := f.recv.Read(buf)
		if err != nil {
			return
		}
		if n < 8 {
			continue
		}
		seq := binary.BigEndian.Uint64(buf)
		f.mu.Lock()
		if seq < 1<<24 {
			for uint64(len(f.seen)) <= seq {
				f.seen = append(f.seen, false)
			}
			if f.seen[seq] {
				f.dups++
			} else {
				f.seen[seq] = true
				f.received++
			}
			f.lastRecv = time.Now()
		}
		f.mu.Unlock()
	}
}

// Stop stops sending, waits grace for datagrams in flight, and returns the
// flow's statistics.
func (f *Flow) Stop(grace time.Duration) FlowStats {
	f.cancel()
	time.Sleep(grace)
	f.send.Close()
	f.recv.Close()
	f.wg.Wait()
	return f.Stats()
}

// maxFirstLost bounds FlowStats.FirstLost.
const maxFirstLost = 8

// Stats returns the statistics so far: datagrams not yet received count
// as lost.
func (f *Flow) Stats() FlowStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	sent := f.sent.Load()
	s := FlowStats{Sent: sent, Received: f.received, Duplicates: f.dups, LastReceived: f.lastRecv, SendErrors: f.sendErrs}
	if f.sendErr != nil {
		s.LastSendError = f.sendErr.Error()
	}
	if d, err := udpBufferDrops(f.dstNS); err == nil && d >= f.drops0 {
		s.ReceiverDrops = d - f.drops0
	}
	var gap, longest uint64
	for seq := uint64(0); seq < sent; seq++ {
		if seq < uint64(len(f.seen)) && f.seen[seq] {
			gap = 0
			continue
		}
		s.Lost++
		if len(s.FirstLost) < maxFirstLost {
			s.FirstLost = append(s.FirstLost, seq)
		}
		gap++
		longest = max(longest, gap)
	}
	s.LongestGap = time.Duration(longest) * f.interval
	return s
}

// udpBufferDrops sums the RcvbufErrors of UDP over IPv4 and IPv6 in a
// namespace (/proc/net/snmp and snmp6 show the reading thread's
// namespace).
func udpBufferDrops(ns netns.NS) (uint64, error) {
	var total uint64
	err := ns.Do(func() error {
		v4, err := os.ReadFile("/proc/thread-self/net/snmp")
		if err != nil {
			return err
		}
		total += snmpField(string(v4), "Udp:", "RcvbufErrors")
		v6, err := os.ReadFile("/proc/thread-self/net/snmp6")
		if err != nil {
			return err
		}
		for _, l := range strings.Split(string(v6), "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[0] == "Udp6RcvbufErrors" {
				n, _ := strconv.ParseUint(f[1], 10, 64)
				total += n
			}
		}
		return nil
	})
	return total, err
}

// snmpField reads one counter of /proc/net/snmp, whose protocols come as a
// header line of names followed by a line of values.
func snmpField(snmp, proto, name string) uint64 {
	lines := strings.Split(snmp, "\n")
	for i := 0; i+1 < len(lines); i++ {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != proto || len(values) != len(names) || values[0] != proto {
			continue
		}
		for j, n := range names {
			if n == name {
				v, _ := strconv.ParseUint(values[j], 10, 64)
				return v
			}
		}
	}
	return 0
}
