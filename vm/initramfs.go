package vm

import (
	"bufio"
	"bytes"
	"debug/elf"
	_ "embed"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// The initramfs holds a static busybox, /init (init.sh) and the modules
// /init needs before it can reach the host root: virtio PCI, 9p over virtio
// and overlayfs. It is built for each run from the image and the host's
// busybox, so it always matches this package's init.sh.

//go:embed init.sh
var initScript []byte

// initramfsModules are loaded by /init in dependency order; the ones the
// kernel has built in are left out.
var initramfsModules = []string{"virtio_pci", "9pnet_virtio", "9p", "overlay"}

// writeInitramfs writes the initramfs for im to w.
func writeInitramfs(im *Image, busybox string, w io.Writer) error {
	order, err := im.initramfsModules()
	if err != nil {
		return err
	}
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return fmt.Errorf("reading busybox: %w", err)
	}
	c := newCPIOWriter(w)
	for _, d := range []string{"bin", "dev", "proc", "sys", "modules"} {
		if err := c.Dir(d, 0o755); err != nil {
			return err
		}
	}
	if err := c.CharDev("dev/console", 0o600, 5, 1); err != nil {
		return err
	}
	if err := c.File("bin/busybox", 0o755, bb); err != nil {
		return err
	}
	if err := c.File("init", 0o755, initScript); err != nil {
		return err
	}
	var load bytes.Buffer
	for _, rel := range order {
		data, err := readModule(filepath.Join(im.Modules(), rel))
		if err != nil {
			return err
		}
		name := moduleName(rel) + ".ko"
		if err := c.File("modules/"+name, 0o644, data); err != nil {
			return err
		}
		fmt.Fprintln(&load, name)
	}
	if err := c.File("modules/load", 0o644, load.Bytes()); err != nil {
		return err
	}
	return c.Close()
}

// initramfsModules returns, relative to the module tree, the modules /init
// loads, dependencies first.
func (im *Image) initramfsModules() ([]string, error) {
	dep, err := os.ReadFile(filepath.Join(im.Modules(), "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("reading module index: %w", err)
	}
	builtin, err := os.ReadFile(filepath.Join(im.Modules(), "modules.builtin"))
	if err != nil {
		return nil, fmt.Errorf("reading module index: %w", err)
	}
	return moduleLoadOrder(dep, builtin, initramfsModules)
}

// moduleLoadOrder resolves module names against modules.dep and returns the
// paths to load, each after its dependencies, each once. Modules listed in
// modules.builtin are skipped.
func moduleLoadOrder(modulesDep, modulesBuiltin []byte, names []string) ([]string, error) {
	deps := map[string][]string{}
	byName := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(modulesDep))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
		byName[moduleName(mod)] = mod
	}
	builtin := map[string]bool{}
	for _, line := range strings.Fields(string(modulesBuiltin)) {
		builtin[moduleName(line)] = true
	}

	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(mod string) error
	visit = func(mod string) error {
		switch state[mod] {
		case 1:
			return fmt.Errorf("module dependency cycle at %s", mod)
		case 2:
			return nil
		}
		state[mod] = 1
		for _, d := range deps[mod] {
			if err := visit(d); err != nil {
				return err
			}
		}
		state[mod] = 2
		order = append(order, mod)
		return nil
	}
	for _, n := range names {
		if builtin[n] {
			continue
		}
		mod, ok := byName[n]
		if !ok {
			return nil, fmt.Errorf("module %s is neither built in nor in modules.dep", n)
		}
		if err := visit(mod); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// moduleName turns a module path (kernel/fs/9p/9p.ko.xz) into the name the
// kernel uses (9p), with dashes as underscores.
func moduleName(p string) string {
	base := path.Base(p)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

// readModule returns a module file's contents; Prepare has decompressed
// them all.
func readModule(file string) ([]byte, error) {
	if !strings.HasSuffix(file, ".ko") {
		return nil, fmt.Errorf("module %s: not a decompressed module", file)
	}
	return os.ReadFile(file)
}

// findBusybox returns the host's static busybox (from busybox-static): it
// runs as /init before any library is reachable.
func findBusybox() (string, error) {
	p, err := exec.LookPath("busybox")
	if err != nil {
		return "", fmt.Errorf("%w: busybox (package busybox-static)", ErrMissingTool)
	}
	if err := checkStatic(p); err != nil {
		return "", fmt.Errorf("%w: static busybox (package busybox-static): %w", ErrMissingTool, err)
	}
	return p, nil
}

// checkStatic fails unless the ELF file at p has no program interpreter,
// that is, runs without a dynamic loader.
func checkStatic(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("checking %s: %w", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked", p)
		}
	}
	return nil
}
