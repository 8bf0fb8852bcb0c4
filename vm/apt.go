package vm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The host's apt resolves and fetches kernel packages; nothing is ever
// installed on the host: packages are unpacked into the cache with
// dpkg-deb.

// resolvePackage returns the kernel image package the metapackage meta
// currently depends on, and that package's candidate version. When apt does
// not know meta and the process is root, it updates the package lists once
// and tries again.
func resolvePackage(ctx context.Context, meta string) (pkg, version string, err error) {
	pkg, version, err = resolveOnce(ctx, meta)
	if err == nil || os.Geteuid() != 0 {
		return pkg, version, err
	}
	if _, uerr := runTool(ctx, "", "apt-get", "update", "-q"); uerr != nil {
		return "", "", errors.Join(err, uerr)
	}
	return resolveOnce(ctx, meta)
}

func resolveOnce(ctx context.Context, meta string) (pkg, version string, err error) {
	// One apt-cache call when, as in Debian, the metapackage pins the
	// exact version of its image package; each call takes over a second.
	out, err := runTool(ctx, "", "apt-cache", "show", "--no-all-versions", meta)
	if err != nil {
		return "", "", err
	}
	pkg, version, err = parseImageDepends(out)
	if err != nil {
		return "", "", fmt.Errorf("resolving %s: %w", meta, err)
	}
	if version != "" {
		return pkg, version, nil
	}
	out, err = runTool(ctx, "", "apt-cache", "show", "--no-all-versions", pkg)
	if err != nil {
		return "", "", err
	}
	version, err = parseVersion(out)
	if err != nil {
		return "", "", fmt.Errorf("resolving %s: %w", pkg, err)
	}
	return pkg, version, nil
}

// parseImageDepends returns the linux-image-* package in the Depends field
// of `apt-cache show` output, and its version if pinned with "(= version)".
func parseImageDepends(out []byte) (pkg, version string, err error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		deps, ok := strings.CutPrefix(sc.Text(), "Depends: ")
		if !ok {
			continue
		}
		for _, dep := range strings.Split(deps, ",") {
			dep = strings.TrimSpace(dep)
			name, constraint, _ := strings.Cut(dep, " ")
			if !strings.HasPrefix(name, "linux-image-") {
				continue
			}
			constraint = strings.TrimSpace(constraint)
			if v, ok := strings.CutPrefix(constraint, "(= "); ok {
				version = strings.TrimSuffix(v, ")")
			}
			return name, version, nil
		}
	}
	return "", "", errors.New("no linux-image dependency")
}

// parseVersion returns the Version field of `apt-cache show` output.
func parseVersion(out []byte) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Version: "); ok && v != "" {
			return v, nil
		}
	}
	return "", errors.New("no version")
}

// downloadPackage fetches pkg at version into dir and returns the .deb path.
func downloadPackage(ctx context.Context, pkg, version, dir string) (string, error) {
	if _, err := runTool(ctx, dir, "apt-get", "download", "-q", pkg+"="+version); err != nil {
		return "", err
	}
	debs, err := filepath.Glob(filepath.Join(dir, "*.deb"))
	if err != nil || len(debs) != 1 {
		return "", fmt.Errorf("downloading %s: want one .deb, found %d", pkg, len(debs))
	}
	return debs[0], nil
}

// runTool runs a host tool and returns its standard output; a failure
// carries the tool's standard error.
func runTool(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrMissingTool, name)
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}
