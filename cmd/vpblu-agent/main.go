// Command vpblu-agent is the vpblu daemon, one per node (SPEC §9, §10).
//
//	vpblu-agent [flags]                     run the daemon
//	vpblu-agent --uninstall [flags]         remove everything the daemon created on this node
//	vpblu-agent dump [flags]                print the node's keys (public) and eBPF state
//	vpblu-agent wireguard-go IFACE MTU      (internal) run one userspace WireGuard device
//
// It needs root (WireGuard, routing, nftables, eBPF).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/lumbrjx/vpblu/bpf"
	"github.com/lumbrjx/vpblu/nodeagent/agent"
	"github.com/lumbrjx/vpblu/nodeagent/health"
	"github.com/lumbrjx/vpblu/nodeagent/keys"
	"github.com/lumbrjx/vpblu/nodeagent/mss"
	"github.com/lumbrjx/vpblu/nodeagent/rotation"
	"github.com/lumbrjx/vpblu/nodeagent/route"
	"github.com/lumbrjx/vpblu/nodeagent/stream"
	"github.com/lumbrjx/vpblu/nodeagent/wg"
)

// version is set with -ldflags "-X main.version=...".
var version = "dev"

// deviceCommand is the hidden subcommand that runs one userspace device.
const deviceCommand = "wireguard-go"

type config struct {
	node, nodeIP, controllers, caFile, tokenFile, serverName string
	stateDir, backend, podInterfaces, clusterCIDRs           string
	pinDir, attach, healthAddr, metricsAddr, logLevel        string
	mtuOverhead, table, rulePriority, maxBlockRules          int
	rotationTable                                            int
	mark, rotationMark, dropSample                           uint
	statusInterval                                           time.Duration
	uninstall                                                bool
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func flags(name string, c *config) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	fs.StringVar(&c.node, "node", envOr("NODE_NAME", ""), "this node's name (default $NODE_NAME)")
	fs.StringVar(&c.nodeIP, "node-ip", envOr("NODE_IP", ""), "this node's IP; the interface carrying it gives the primary MTU (default $NODE_IP)")
	fs.StringVar(&c.controllers, "controllers", envOr("VPBLU_CONTROLLERS", ""), "controller stream addresses host:port, comma-separated, tried in turn (default $VPBLU_CONTROLLERS)")
	fs.StringVar(&c.caFile, "ca-file", "/etc/vpblu/ca/ca.crt", "PEM bundle of the CA that signs the controllers' serving certificate")
	fs.StringVar(&c.tokenFile, "token-file", "/var/run/secrets/vpblu/token", "projected ServiceAccount token (audience vpblu.io/agent), re-read when it changes")
	fs.StringVar(&c.serverName, "server-name", "", "name to verify in the controllers' certificate (default: the address's host)")
	fs.StringVar(&c.stateDir, "state-dir", keys.DefaultDir, "state directory (private keys, mode 0700)")
	fs.StringVar(&c.backend, "backend", "", "WireGuard backend: kernel, userspace, or empty to use the kernel when it has WireGuard")
	fs.IntVar(&c.mtuOverhead, "mtu-overhead", route.DefaultMTUOverhead, "bytes subtracted from the primary MTU for wg-mesh's MTU")
	fs.StringVar(&c.podInterfaces, "pod-interfaces", strings.Join(agent.DefaultPodInterfaces, ","), "shell patterns of pods' host-side interfaces, comma-separated; classify is attached to them")
	fs.StringVar(&c.clusterCIDRs, "cluster-cidrs", "", "pod CIDRs of the cluster, comma-separated; dropped (fail closed) until the first state arrives")
	fs.StringVar(&c.pinDir, "bpf-pin-dir", bpf.DefaultPinDir, "bpffs directory for the eBPF maps and links")
	fs.StringVar(&c.attach, "attach", "auto", "eBPF attach mode: auto, tcx or legacy (clsact)")
	fs.IntVar(&c.maxBlockRules, "max-block-rules", 0, "capacity of the block-rule maps (0: the default)")
	fs.UintVar(&c.mark, "mark", uint(route.DefaultMark), "fwmark steering packets into wg-mesh (0x1100; hex accepted)")
	fs.IntVar(&c.table, "table", route.DefaultTable, "routing table of wg-mesh")
	fs.IntVar(&c.rulePriority, "rule-priority", route.DefaultPriority, "priority of the fwmark rule")
	fs.UintVar(&c.rotationMark, "rotation-mark", uint(rotation.DefaultMark), "fwmark steering packets into wg-rot during a key rotation (0x1200; inside the mask 0x3f00 and different from --mark under it)")
	fs.IntVar(&c.rotationTable, "rotation-table", rotation.DefaultTable, "routing table of wg-rot during a key rotation")
	fs.UintVar(&c.dropSample, "drop-sample", agent.DefaultDropSample, "report one dropped packet in this many to the drops ring buffer")
	fs.DurationVar(&c.statusInterval, "status-interval", stream.DefaultStatusInterval, "interval between tunnel status reports")
	fs.StringVar(&c.healthAddr, "health-addr", ":9190", "address serving /healthz and /readyz")
	fs.StringVar(&c.metricsAddr, "metrics-addr", ":9191", "address serving Prometheus /metrics")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&c.uninstall, "uninstall", false, "remove everything vpblu created on this node (eBPF, nftables, rules, routes, WireGuard interfaces, rotation journal, keys) and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s [flags]\n       %s --uninstall [flags]\n       %s dump [flags]\n\nflags:\n", name, name, name)
		fs.PrintDefaults()
	}
	return fs
}

func main() {
	args := os.Args[1:]
	var err error
	switch {
	case len(args) > 0 && args[0] == deviceCommand:
		err = runDevice(args[1:])
	case len(args) > 0 && args[0] == "dump":
		var c config
		fs := flags("vpblu-agent dump", &c)
		_ = fs.Parse(args[1:])
		err = dump(os.Stdout, c)
	default:
		var c config
		fs := flags("vpblu-agent", &c)
		_ = fs.Parse(args)
		log := newLogger(c.logLevel)
		if c.uninstall {
			err = uninstall(c)
		} else {
			err = run(c, log)
		}
		if err != nil {
			log.Error("vpblu-agent failed", "err", err)
			os.Exit(1)
		}
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vpblu-agent:", err)
		os.Exit(1)
	}
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// runDevice is the device process of the userspace backend.
func runDevice(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("usage: vpblu-agent %s IFACE MTU", deviceCommand)
	}
	mtu, err := strconv.Atoi(args[1])
	if err != nil {
		return fmt.Errorf("mtu %q: %w", args[1], err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return wg.RunDevice(ctx, args[0], mtu)
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range splitList(s) {
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("cluster CIDR %q: %w", f, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func attachMode(s string) (bpf.AttachMode, error) {
	switch s {
	case "auto", "":
		return bpf.AttachAuto, nil
	case "tcx":
		return bpf.AttachTCX, nil
	case "legacy", "clsact":
		return bpf.AttachLegacy, nil
	}
	return 0, fmt.Errorf("attach mode %q: want auto, tcx or legacy", s)
}

// backend opens the WireGuard backend; userspace devices run as detached
// processes of this binary so they outlive the daemon.
func backend(kind string) (wg.Backend, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding own executable: %w", err)
	}
	return wg.Open(wg.Options{Kind: wg.Kind(kind), Daemon: []string{self, deviceCommand}})
}

func run(c config, log *slog.Logger) error {
	nodeIP, err := netip.ParseAddr(c.nodeIP)
	if err != nil {
		return fmt.Errorf("--node-ip %q: %w", c.nodeIP, err)
	}
	clusters, err := parsePrefixes(c.clusterCIDRs)
	if err != nil {
		return err
	}
	mode, err := attachMode(c.attach)
	if err != nil {
		return err
	}
	if c.mark == 0 || c.mark > 0xffffffff || c.rotationMark > 0xffffffff || c.dropSample > 0xffffffff {
		return errors.New("--mark, --rotation-mark and --drop-sample must fit 32 bits, and --mark must not be 0")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	ks, err := keys.Open(keys.Options{Dir: c.stateDir})
	if err != nil {
		return fmt.Errorf("opening key store: %w", err)
	}
	wgb, err := backend(c.backend)
	if err != nil {
		return err
	}
	if err := bpf.MountFS(filepath.Dir(c.pinDir)); err != nil {
		return err
	}
	dp, err := bpf.Open(bpf.Options{PinDir: c.pinDir, Attach: mode, Capacity: bpf.Capacity{BlockRules: c.maxBlockRules}})
	if err != nil {
		return fmt.Errorf("opening the data plane: %w", err)
	}
	a, err := agent.New(agent.Options{
		Node: c.node, NodeIP: nodeIP, MTUOverhead: c.mtuOverhead,
		Mark: uint32(c.mark), Table: c.table, RulePriority: c.rulePriority,
		RotationMark: uint32(c.rotationMark), RotationTable: c.rotationTable,
		PodInterfaces: splitList(c.podInterfaces), ClusterCIDRs: clusters,
		DropSample: uint32(c.dropSample), Version: version,
	}, agent.Deps{
		Tunnels:  wg.NewManager(wgb, wg.WithInitiationDelay(wg.DefaultInitiationDelay)),
		Routes:   route.New(route.Netlink{}, route.Options{}),
		Clamp:    mss.New(mss.NFTables{}),
		Datapath: agent.BPF{Datapath: dp},
		Keys:     ks,
		Links:    agent.NetlinkLinks{},
		Journal:  journal(c.stateDir),
	})
	if err != nil {
		return err
	}
	// The data plane stays as it is when the daemon stops (SIGTERM).
	defer func() {
		if err := a.Close(); err != nil {
			log.Warn("closing", "err", err)
		}
		_ = wgb.Close()
	}()
	client, err := stream.New(stream.Options{
		Addresses: splitList(c.controllers), CAFile: c.caFile, ServerName: c.serverName, TokenFile: c.tokenFile,
		Handler: a, Hello: a, Status: a, Rotation: a, StatusInterval: c.statusInterval,
		OnState: func(s stream.State) {
			if s.Connected {
				log.Info("stream connected", "controller", s.Address, "applied", s.Applied.String())
			} else {
				log.Warn("stream lost", "controller", s.Address, "err", s.LastError)
			}
		},
	})
	if err != nil {
		return err
	}
	// Reports made while starting (a rotation a restart interrupted) wait
	// in the client for the stream.
	a.SetReporter(client)
	if err := a.Start(); err != nil {
		return err
	}
	if o := a.Rotation(); o.Active() {
		log.Info("rotation in progress", "rotation", o.ID, "stage", o.Stage.String(), "role", string(o.Role), "done", o.Done)
	}
	log.Info("data plane ready", "node", c.node, "backend", wgb.Kind(), "pinDir", c.pinDir)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(health.NewCollector(health.SourceFunc(func() health.Snapshot {
		s := a.Snapshot()
		st := client.State()
		s.Stream = health.Stream{Connected: st.Connected, Connects: st.Connects, AppliedEpoch: st.Applied.Epoch, AppliedSeq: st.Applied.Seq, Acks: map[string]uint64{}}
		for code, n := range st.Acks {
			s.Stream.Acks[code.String()] = n
		}
		return s
	}), nil))
	h := health.Handler(health.Options{Ready: client.Ready, Gatherer: reg})
	errc := make(chan error, 5)
	for _, addr := range uniq(c.healthAddr, c.metricsAddr) {
		srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listening on %s: %w", addr, err)
		}
		go func() { errc <- srv.Serve(ln) }()
		defer srv.Close()
	}

	go func() {
		errc <- a.FollowLinks(ctx, func(ev agent.LinkEvent, err error) {
			log.Warn("attaching to interface", "iface", ev.Name, "index", ev.Index, "err", err)
		})
	}()
	go func() {
		errc <- a.FollowRotation(ctx, func(err error) { log.Warn("reading rotation handshakes", "err", err) })
	}()
	go func() { errc <- client.Run(ctx) }()
	select {
	case <-ctx.Done():
		log.Info("stopping; the data plane keeps forwarding")
		return nil
	case err := <-errc:
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
}

func uniq(addrs ...string) []string {
	var out []string
	for _, a := range addrs {
		if a != "" && !contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// uninstall removes everything vpblu created on this node; it goes on
// after errors and reports them all.
func uninstall(c config) error {
	wgb, err := backend(c.backend)
	if err != nil {
		return err
	}
	defer wgb.Close()
	m := wg.NewManager(wgb)
	return errors.Join(
		bpf.Remove(c.pinDir),
		mss.New(mss.NFTables{}).Set(mss.Config{}),
		route.New(route.Netlink{}, route.Options{}).Set(route.Config{}),
		m.Delete(wg.RotationInterface),
		m.Delete(wg.MeshInterface),
		// The journal goes first: keys.Remove removes the directory only
		// when it is empty.
		journal(c.stateDir).Remove(),
		keys.Remove(c.stateDir),
	)
}

// journal is the rotation journal in the state directory.
func journal(stateDir string) rotation.FileJournal {
	if stateDir == "" {
		stateDir = keys.DefaultDir
	}
	return rotation.FileJournal{Path: filepath.Join(stateDir, rotation.JournalFile)}
}

// dump prints what is stable about the node's vpblu state: public keys
// and the eBPF maps and attachments.
func dump(w io.Writer, c config) error {
	infos, err := keys.Inspect(c.stateDir)
	if err != nil {
		return err
	}
	for _, k := range infos {
		fmt.Fprintf(w, "key %s generation %d %s\n", k.State, k.Generation, k.Public)
	}
	// A rotation in progress; nothing when none runs, so the output stays
	// the same across restarts.
	o, err := journal(c.stateDir).Load()
	if err != nil {
		return err
	}
	if o.Active() {
		fmt.Fprintf(w, "rotation %s %s role %s done=%v\n", o.ID, o.Stage, o.Role, o.Done)
	}
	if _, err := os.Stat(c.pinDir); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintln(w, "ebpf: not installed")
		return nil
	}
	dp, err := bpf.Open(bpf.Options{PinDir: c.pinDir})
	if err != nil {
		return fmt.Errorf("opening the data plane: %w", err)
	}
	defer dp.Close()
	s, err := dp.Dump()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "ebpf config strict=%v isolated=%v drop-sample=%d\n", s.Config.Strict, s.Config.Isolated, s.Config.DropSample)
	for _, r := range s.Remotes {
		fmt.Fprintf(w, "ebpf remote %s node %d mark %#x\n", r.CIDR, r.Node, r.Mark)
	}
	for _, n := range s.Nodes {
		fmt.Fprintf(w, "ebpf node %d ready=%v isolated=%v\n", n.ID, n.Ready, n.Isolated)
	}
	for _, p := range s.Locals {
		fmt.Fprintf(w, "ebpf local %s\n", p)
	}
	for _, p := range s.Clusters {
		fmt.Fprintf(w, "ebpf cluster %s\n", p)
	}
	for _, r := range s.Blocks {
		fmt.Fprintf(w, "ebpf block %s\n", r)
	}
	atts, err := dp.Attachments()
	if err != nil {
		return err
	}
	for _, at := range atts {
		name := strconv.Itoa(at.Ifindex)
		if ifc, err := net.InterfaceByIndex(at.Ifindex); err == nil {
			name = ifc.Name
		}
		fmt.Fprintf(w, "ebpf attach %s %s live=%v\n", at.Hook, name, at.Live)
	}
	return nil
}
