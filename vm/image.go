package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Image is a kernel unpacked into the cache, ready to boot: the kernel
// image and its module tree (with the module index busybox depmod built).
//
// Cache layout, under the cache directory (DefaultCacheDir):
//
//	<kernel name>.lock                   held while preparing
//	<kernel name>/<package>_<version>/
//	    image.json                       what Image says; written last
//	    vmlinux                          uncompressed kernel, if it has PVH
//	    root/boot/vmlinuz-<release>
//	    root/lib/modules/<release>/...   with modules.dep and modules.alias
//
// Only the version apt currently offers is kept; older ones are removed
// when a newer one is prepared.
type Image struct {
	Kernel Kernel
	// Package and Version are the Debian kernel image package unpacked.
	Package string
	Version string
	// Release is what uname -r reports in the guest.
	Release string
	// Dir is the image's cache directory.
	Dir string
	// pvh: Dir holds the uncompressed kernel ELF, bootable through PVH.
	pvh bool
}

// metadata is what image.json holds.
type metadata struct {
	Kernel  Kernel
	Package string
	Version string
	Release string
	PVH     bool
	// Layout is the cache layout the image was prepared with; images of
	// another layout are prepared again.
	Layout int
}

// cacheLayout changes whenever what Prepare leaves in the cache does.
const cacheLayout = 2

// Vmlinuz returns the path of the kernel image.
func (im *Image) Vmlinuz() string {
	return filepath.Join(im.Dir, "root", "boot", "vmlinuz-"+im.Release)
}

// BootKernel returns the kernel file QEMU boots: the uncompressed ELF when
// the kernel has a PVH entry point (much faster under emulation), else the
// bzImage.
func (im *Image) BootKernel() string {
	if im.pvh {
		return filepath.Join(im.Dir, "vmlinux")
	}
	return im.Vmlinuz()
}

// Modules returns the path of the kernel's module tree
// (lib/modules/<release>).
func (im *Image) Modules() string {
	return filepath.Join(im.Dir, "root", "lib", "modules", im.Release)
}

func (im *Image) String() string {
	return fmt.Sprintf("%s (%s %s)", im.Kernel.Name, im.Package, im.Version)
}

// DefaultCacheDir is where images are cached unless told otherwise:
// ~/.cache/vpblu/vm, next to the rest of vpblu's build cache.
func DefaultCacheDir() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the cache directory: %w", err)
	}
	return filepath.Join(home, ".cache", "vpblu", "vm"), nil
}

const metaFile = "image.json"

// Prepare returns the cached image of the kernel apt currently offers for k,
// downloading and unpacking it first if it is not cached. When apt cannot
// resolve the package (no package lists, no network), the newest cached
// image of k is used. cacheDir "" means DefaultCacheDir. Concurrent callers,
// also in other processes, wait for each other.
func Prepare(ctx context.Context, k Kernel, cacheDir string) (*Image, error) {
	if cacheDir == "" {
		var err error
		if cacheDir, err = DefaultCacheDir(); err != nil {
			return nil, err
		}
	}
	kdir := filepath.Join(cacheDir, k.Name)
	if err := os.MkdirAll(kdir, 0o755); err != nil {
		return nil, fmt.Errorf("preparing kernel %s: %w", k.Name, err)
	}
	unlock, err := lockFile(ctx, filepath.Join(cacheDir, k.Name+".lock"))
	if err != nil {
		return nil, fmt.Errorf("preparing kernel %s: %w", k.Name, err)
	}
	defer unlock()

	pkg, version, err := resolvePackage(ctx, k.Package)
	if err != nil {
		if im, cerr := newestCached(kdir); cerr == nil {
			im.Kernel = k
			return im, nil
		}
		return nil, fmt.Errorf("preparing kernel %s: %w", k.Name, err)
	}
	dir := filepath.Join(kdir, pkg+"_"+strings.ReplaceAll(version, ":", "%3a"))
	im, err := loadImage(dir)
	if err == nil {
		im.Kernel = k // as the caller knows it, should Kernels have changed
		return im, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("preparing kernel %s: %w", k.Name, err)
	}
	im, err = unpackImage(ctx, k, pkg, version, dir)
	if err != nil {
		return nil, fmt.Errorf("preparing kernel %s: %w", k.Name, err)
	}
	if err := pruneOthers(kdir, dir); err != nil {
		return nil, fmt.Errorf("preparing kernel %s: %w", k.Name, err)
	}
	return im, nil
}

// unpackImage downloads pkg into a temporary directory next to dir, unpacks
// it, builds the module index, and renames the result to dir, so dir either
// does not exist or is complete.
func unpackImage(ctx context.Context, k Kernel, pkg, version, dir string) (*Image, error) {
	busybox, err := findBusybox()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".prepare-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}

	deb, err := downloadPackage(ctx, pkg, version, tmp)
	if err != nil {
		return nil, err
	}
	root := filepath.Join(tmp, "root")
	if _, err := runTool(ctx, "", "dpkg-deb", "-x", deb, root); err != nil {
		return nil, err
	}
	if err := os.Remove(deb); err != nil {
		return nil, err
	}
	releases, err := os.ReadDir(filepath.Join(root, "lib", "modules"))
	if err != nil {
		return nil, fmt.Errorf("unpacking %s: %w", pkg, err)
	}
	if len(releases) != 1 {
		return nil, fmt.Errorf("unpacking %s: want one module tree, found %d", pkg, len(releases))
	}
	im := &Image{Kernel: k, Package: pkg, Version: version, Release: releases[0].Name(), Dir: tmp}
	if _, err := os.Stat(im.Vmlinuz()); err != nil {
		return nil, fmt.Errorf("unpacking %s: %w", pkg, err)
	}
	if im.pvh, err = extractVmlinux(ctx, im.Vmlinuz(), filepath.Join(tmp, "vmlinux")); err != nil {
		return nil, err
	}
	// busybox modprobe cannot pass compressed modules to the kernel (it
	// tries, and the kernel logs an error for each), so they are
	// decompressed once here.
	if err := decompressModules(ctx, busybox, im.Modules()); err != nil {
		return nil, err
	}
	// Debian builds the module index in postinst, which never runs here.
	if _, err := runTool(ctx, "", busybox, "depmod", "-b", root, im.Release); err != nil {
		return nil, err
	}
	im.Dir = dir
	meta, err := json.MarshalIndent(metadata{
		Kernel: k, Package: pkg, Version: version, Release: im.Release, PVH: im.pvh, Layout: cacheLayout,
	}, "", "\t")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, metaFile), meta, 0o644); err != nil {
		return nil, err
	}
	// dir may hold an image of an older cache layout.
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, err
	}
	return im, nil
}

// loadImage reads a complete cached image; it fails with os.ErrNotExist
// when dir holds none.
func loadImage(dir string) (*Image, error) {
	b, err := os.ReadFile(filepath.Join(dir, metaFile))
	if err != nil {
		return nil, err
	}
	var m metadata
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("reading %s: %w", dir, err)
	}
	if m.Layout != cacheLayout {
		return nil, fmt.Errorf("%s has cache layout %d, want %d: %w", dir, m.Layout, cacheLayout, os.ErrNotExist)
	}
	return &Image{Kernel: m.Kernel, Package: m.Package, Version: m.Version, Release: m.Release, Dir: dir, pvh: m.PVH}, nil
}

// newestCached returns the most recently prepared complete image in kdir.
func newestCached(kdir string) (*Image, error) {
	entries, err := os.ReadDir(kdir)
	if err != nil {
		return nil, err
	}
	type cached struct {
		im  *Image
		mod time.Time
	}
	var all []cached
	for _, e := range entries {
		dir := filepath.Join(kdir, e.Name())
		im, err := loadImage(dir)
		if err != nil {
			continue
		}
		st, err := os.Stat(filepath.Join(dir, metaFile))
		if err != nil {
			continue
		}
		all = append(all, cached{im, st.ModTime()})
	}
	if len(all) == 0 {
		return nil, os.ErrNotExist
	}
	sort.Slice(all, func(i, j int) bool { return all[i].mod.After(all[j].mod) })
	return all[0].im, nil
}

// pruneOthers removes every entry of kdir but keep: older versions and
// leftovers of interrupted preparations.
func pruneOthers(kdir, keep string) error {
	entries, err := os.ReadDir(kdir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		dir := filepath.Join(kdir, e.Name())
		if dir == keep {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	return nil
}

// decompressModules replaces each xz-compressed module under dir by its
// decompressed .ko.
func decompressModules(ctx context.Context, busybox, dir string) error {
	const batch = 256
	var files []string
	flush := func() error {
		if len(files) == 0 {
			return nil
		}
		_, err := runTool(ctx, "", busybox, append([]string{"unxz"}, files...)...)
		files = files[:0]
		return err
	}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && strings.HasSuffix(p, ".ko.xz") {
			files = append(files, p)
			if len(files) == batch {
				return flush()
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("decompressing modules: %w", err)
	}
	if err := flush(); err != nil {
		return fmt.Errorf("decompressing modules: %w", err)
	}
	return nil
}

// lockFile takes an exclusive flock on path, waiting until ctx ends, and
// returns the function that releases it.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
