package kubectlvpblu

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lumbrjx/vpblu/ctrl/meshview"
)

// clearScreen moves the cursor home and clears the terminal, as watch(1)
// and top do between frames.
const clearScreen = "\x1b[H\x1b[2J"

// Watch is meshtop: it redraws the status, followed by verify's failed
// checks, every interval until ctx ends (or after frames frames, when
// frames > 0). A failed read is shown in its frame and the next one tries
// again: a dashboard outlives an API server restart.
func Watch(ctx context.Context, r client.Reader, w io.Writer, every time.Duration, frames int) error {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for i := 0; frames <= 0 || i < frames; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			}
		}
		if _, err := io.WriteString(w, Frame(ctx, r, time.Now(), every)); err != nil {
			return err
		}
	}
	return nil
}

// Frame renders one screen of meshtop.
func Frame(ctx context.Context, r client.Reader, now time.Time, every time.Duration) string {
	var b bytes.Buffer
	b.WriteString(clearScreen)
	fmt.Fprintf(&b, "meshtop  %s  every %s  (Ctrl-C quits)\n\n", now.Format(time.TimeOnly), every)
	lctx, cancel := context.WithTimeout(ctx, max(every, 5*time.Second))
	defer cancel()
	m, err := meshview.Load(lctx, r, now)
	if err != nil {
		fmt.Fprintf(&b, "cannot read the cluster: %v\n", err)
		return b.String()
	}
	_ = meshview.WriteStatus(&b, m)
	checks := meshview.Verify(m)
	failed := meshview.Failed(checks)
	if failed == 0 {
		fmt.Fprintf(&b, "\nverify: all %d checks pass\n", len(checks))
		return b.String()
	}
	fmt.Fprintf(&b, "\nverify: %d of %d checks fail\n", failed, len(checks))
	for _, c := range checks {
		if !c.OK {
			fmt.Fprintf(&b, "  %s\n", c)
		}
	}
	return b.String()
}
