// Command meshtop is a live terminal view of a vpblu mesh (SPEC §15): the
// nodes with their endpoints, peers up, key generations and rotation
// phases, the policies and rotations, and what `kubectl vpblu verify`
// finds wrong, redrawn every interval.
//
//	meshtop [--kubeconfig FILE] [--context NAME] [--interval 2s]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/lumbrjx/vpblu/tools/kubectlvpblu"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "path of the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	kubeContext := flag.String("context", "", "kubeconfig context to use")
	interval := flag.Duration("interval", 2*time.Second, "time between redraws")
	once := flag.Bool("once", false, "draw one frame and exit")
	flag.Parse()
	if flag.NArg() > 0 || *interval <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	c, err := kubectlvpblu.NewClient(*kubeconfig, *kubeContext)
	if err != nil {
		fmt.Fprintf(os.Stderr, "meshtop: %v\n", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	frames := 0
	if *once {
		frames = 1
	}
	if err := kubectlvpblu.Watch(ctx, c, os.Stdout, *interval, frames); err != nil {
		fmt.Fprintf(os.Stderr, "meshtop: %v\n", err)
		os.Exit(1)
	}
}
