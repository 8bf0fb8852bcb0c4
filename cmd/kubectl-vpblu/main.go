// Command kubectl-vpblu is the vpblu kubectl plugin (SPEC §15). Put it on
// PATH and run it as `kubectl vpblu`:
//
//	kubectl vpblu status            nodes, tunnels, policies and rotations
//	kubectl vpblu graph             the mesh in Graphviz DOT (| dot -Tsvg)
//	kubectl vpblu verify            check the mesh is what the controller wants; exit 1 if not
//	kubectl vpblu rotate NODE...    rotate the nodes' keys now (--wait waits for each)
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lumbrjx/vpblu/ctrl/meshview"
	"github.com/lumbrjx/vpblu/tools/kubectlvpblu"
)

const usage = `usage: kubectl vpblu <command> [flags]

commands:
  status             nodes, tunnels, policies and rotations as the cluster reports them
  graph              the mesh as a Graphviz graph (kubectl vpblu graph | dot -Tsvg > mesh.svg)
  verify             check every wanted tunnel is up and every policy applied; exit 1 if not
  rotate NODE...     rotate the nodes' WireGuard keys now, one after the other

flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("kubectl vpblu", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	kubeconfig := fs.String("kubeconfig", "", "path of the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	kubeContext := fs.String("context", "", "kubeconfig context to use")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long (rotate --wait: per node)")
	wait := fs.Bool("wait", false, "rotate: wait until each rotation completed before the next")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			fs.Usage()
			return 0
		}
		fs.Usage()
		return 2
	}
	cmd := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}
	if cmd != "rotate" && fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kubectl vpblu %s: unexpected arguments %q\n", cmd, fs.Args())
		return 2
	}
	switch cmd {
	case "status", "graph", "verify", "rotate":
	default:
		fmt.Fprintf(stderr, "kubectl vpblu: unknown command %q\n\n", cmd)
		fs.Usage()
		return 2
	}
	if cmd == "rotate" && fs.NArg() == 0 {
		fmt.Fprintln(stderr, "kubectl vpblu rotate: name at least one node")
		return 2
	}

	c, err := kubectlvpblu.NewClient(*kubeconfig, *kubeContext)
	if err != nil {
		fmt.Fprintf(stderr, "kubectl vpblu: %v\n", err)
		return 1
	}
	if cmd == "rotate" {
		return rotate(ctx, c, fs.Args(), *wait, *timeout, stdout, stderr)
	}
	lctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	m, err := meshview.Load(lctx, c, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "kubectl vpblu %s: %v\n", cmd, err)
		return 1
	}
	switch cmd {
	case "status":
		err = meshview.WriteStatus(stdout, m)
	case "graph":
		err = meshview.WriteDOT(stdout, m)
	case "verify":
		checks := meshview.Verify(m)
		for _, c := range checks {
			mark := "ok  "
			if !c.OK {
				mark = "FAIL"
			}
			fmt.Fprintf(stdout, "%s %s\n", mark, c)
		}
		if n := meshview.Failed(checks); n > 0 {
			fmt.Fprintf(stdout, "%d of %d checks failed\n", n, len(checks))
			return 1
		}
		fmt.Fprintf(stdout, "all %d checks passed: %d nodes, %d tunnels\n", len(checks), len(m.Nodes), len(m.Tunnels))
	}
	if err != nil {
		fmt.Fprintf(stderr, "kubectl vpblu %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

func rotate(ctx context.Context, c client.Client, nodes []string, wait bool, timeout time.Duration, stdout, stderr io.Writer) int {
	for _, node := range nodes {
		request := time.Now().UTC().Format(time.RFC3339Nano)
		since := time.Now()
		rctx, cancel := context.WithTimeout(ctx, timeout)
		before, err := kubectlvpblu.Rotate(rctx, c, node, request)
		if err != nil {
			cancel()
			fmt.Fprintf(stderr, "kubectl vpblu rotate: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "node/%s: rotation requested (key generation %d, vpblu.io/rotate=%s)\n", node, before.KeyGeneration, request)
		if !wait {
			cancel()
			continue
		}
		st, err := kubectlvpblu.AwaitRotation(rctx, c, node, request, before.KeyGeneration, since, 200*time.Millisecond)
		cancel()
		if err != nil {
			fmt.Fprintf(stderr, "kubectl vpblu rotate: node %s: %v\n", node, err)
			return 1
		}
		fmt.Fprintf(stdout, "node/%s: rotated to key generation %d in %s\n", node, st.KeyGeneration, time.Since(since).Round(time.Millisecond))
	}
	return 0
}
