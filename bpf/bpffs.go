package bpf

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// isBPFFS reports whether path is on a bpf filesystem.
func isBPFFS(path string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false, fmt.Errorf("statfs %s: %w", path, err)
	}
	return st.Type == unix.BPF_FS_MAGIC, nil
}

// MountFS makes sure dir is on a bpf filesystem, mounting one there when
// it is not. The daemon calls it for the parent of its pin directory when
// the host has not mounted /sys/fs/bpf.
func MountFS(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	ok, err := isBPFFS(dir)
	if err != nil || ok {
		return err
	}
	if err := unix.Mount("bpffs", dir, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount bpffs on %s: %w", dir, err)
	}
	return nil
}
