package main

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ErrNotStatic: a binary needs a dynamic loader or shared libraries, which
// an empty image does not have.
var ErrNotStatic = errors.New("binary is not statically linked")

// machines are the ELF machines of the architectures images are built for.
var machines = map[string]elf.Machine{
	"amd64": elf.EM_X86_64,
	"arm64": elf.EM_AARCH64,
}

// compileOptions say where and how to build.
type compileOptions struct {
	// Root is the module root.
	Root string
	// Dir receives the binaries.
	Dir string
	// Version is stamped into main.version.
	Version  string
	Platform v1.Platform
}

// compile builds s's binary for a platform with CGO off and returns its
// path.
func compile(ctx context.Context, s Spec, o compileOptions) (string, error) {
	out, err := filepath.Abs(filepath.Join(o.Dir, o.Platform.OS+"-"+o.Platform.Architecture, s.Name))
	if err != nil {
		return "", err
	}
	args := []string{"build", "-trimpath", "-buildvcs=false",
		"-ldflags", "-s -w -X main.version=" + o.Version, "-o", out}
	args = append(args, s.Package)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = o.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+o.Platform.OS, "GOARCH="+o.Platform.Architecture)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s: %w: %s", s.Package, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// checkStatic refuses a binary that is not an ELF executable for arch or
// that needs a dynamic loader or shared libraries.
func checkStatic(r io.ReaderAt, arch string) error {
	f, err := elf.NewFile(r)
	if err != nil {
		return fmt.Errorf("reading ELF: %w", err)
	}
	defer f.Close()
	if want, ok := machines[arch]; !ok || f.Machine != want {
		return fmt.Errorf("ELF machine %s is not %s's", f.Machine, arch)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%w: it has an interpreter (PT_INTERP)", ErrNotStatic)
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return fmt.Errorf("reading ELF dynamic section: %w", err)
	}
	if len(libs) > 0 {
		return fmt.Errorf("%w: it needs %s", ErrNotStatic, strings.Join(libs, ", "))
	}
	return nil
}
