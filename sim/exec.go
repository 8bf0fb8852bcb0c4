package sim

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
)

// InNS runs a command inside a named network namespace (through
// `ip netns exec`, which also gives it a private /sys) and returns its
// combined output.
func InNS(ctx context.Context, ns string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %v in %s: %w: %s", name, args, ns, err, bytes.TrimSpace(out.Bytes()))
	}
	return out.String(), nil
}
