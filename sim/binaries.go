package sim

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Binaries are the vpblu programs the simulator runs.
type Binaries struct {
	Controller string
	Agent      string
	// Plugin is kubectl-vpblu, the kubectl plugin.
	Plugin string
}

func binariesIn(dir string) Binaries {
	return Binaries{Controller: filepath.Join(dir, "vpblu-controller"), Agent: filepath.Join(dir, "vpblu-agent"), Plugin: filepath.Join(dir, "kubectl-vpblu")}
}

// BuildBinaries builds vpblu-controller, vpblu-agent and kubectl-vpblu from the module
// that contains this package's source into dir, unless VPBLU_BIN_DIR names
// a directory that already holds them (the VM runner sets it: the guest
// cannot build).
func BuildBinaries(ctx context.Context, dir string) (Binaries, error) {
	if pre := os.Getenv("VPBLU_BIN_DIR"); pre != "" {
		b := binariesIn(pre)
		for _, p := range []string{b.Controller, b.Agent, b.Plugin} {
			if _, err := os.Stat(p); err != nil {
				return Binaries{}, fmt.Errorf("VPBLU_BIN_DIR: %w", err)
			}
		}
		return b, nil
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return Binaries{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Binaries{}, err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", dir+"/", "./cmd/vpblu-controller", "./cmd/vpblu-agent", "./cmd/kubectl-vpblu")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return Binaries{}, fmt.Errorf("build vpblu binaries: %w\n%s", err, out)
	}
	return binariesIn(dir), nil
}

func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the vpblu module (run from the repository, or set VPBLU_BIN_DIR)")
	}
	return filepath.Dir(mod), nil
}
