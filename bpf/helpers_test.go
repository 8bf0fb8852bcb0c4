package bpf

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/lumbrjx/vpblu/tools/privtest"
)

// testPinDir returns a fresh pin directory for one test and removes it,
// and everything pinned in it, when the test ends. It lives under
// /sys/fs/bpf when that is a bpf filesystem; otherwise the test mounts a
// private bpffs of its own and unmounts it afterwards.
func testPinDir(t testing.TB) string {
	t.Helper()
	privtest.Require(t, "mount bpffs and pin BPF objects")
	base := "/sys/fs/bpf"
	if ok, _ := isBPFFS(base); !ok {
		base = filepath.Join(t.TempDir(), "bpffs")
		if err := os.Mkdir(base, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("bpffs", base, "bpf", 0, "mode=0700"); err != nil {
			t.Fatalf("mount bpffs: %v", err)
		}
		t.Cleanup(func() {
			if err := unix.Unmount(base, 0); err != nil {
				t.Errorf("unmount test bpffs: %v", err)
			}
		})
	}
	dir, err := os.MkdirTemp(base, "vpblu-test-")
	if err != nil {
		t.Fatalf("create pin dir: %v", err)
	}
	t.Cleanup(func() {
		if err := Remove(dir); err != nil {
			t.Errorf("remove pin dir: %v", err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pin dir %s still exists", dir)
		}
	})
	return dir
}

// openTest opens a datapath in a fresh pin directory and closes it when
// the test ends.
func openTest(t testing.TB, opts Options) *Datapath {
	t.Helper()
	privtest.Require(t, "load BPF programs and pin maps")
	if opts.PinDir == "" {
		opts.PinDir = testPinDir(t)
	}
	d, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return d
}
