package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// root is the module root, from this package's directory.
const root = "../.."

// The controller image is built as `make images` builds it (go build,
// then a one-layer image on an empty base) and read back from both
// outputs: the docker-archive tarball and the OCI layout.
func TestControllerImage(t *testing.T) {
	spec := specNamed(t, "vpblu-controller")
	platform := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	out, work := t.TempDir(), t.TempDir()
	o := options{root: root, out: out, registry: "ghcr.io/lumbrjx", tag: "0.0.0-test",
		platforms: []v1.Platform{platform}, created: time.Unix(0, 0).UTC()}
	tag, err := name.NewTag("ghcr.io/lumbrjx/vpblu-controller:0.0.0-test")
	if err != nil {
		t.Fatal(err)
	}
	w, err := build(t.Context(), spec, tag, o, work)
	if err != nil {
		t.Fatal(err)
	}

	img, err := tarball.ImageFromPath(w.Tarball, &tag)
	if err != nil {
		t.Fatalf("reading %s: %v", w.Tarball, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	type config struct {
		OS, Architecture, User, WorkingDir string
		Entrypoint, Cmd, Env               []string
		Created                            time.Time
		Version                            string
	}
	got := config{
		OS: cf.OS, Architecture: cf.Architecture, User: cf.Config.User, WorkingDir: cf.Config.WorkingDir,
		Entrypoint: cf.Config.Entrypoint, Cmd: cf.Config.Cmd, Env: cf.Config.Env,
		Created: cf.Created.UTC(), Version: cf.Config.Labels["org.opencontainers.image.version"],
	}
	want := config{
		OS: "linux", Architecture: runtime.GOARCH, User: "65532:65532", WorkingDir: "/",
		Entrypoint: []string{"/usr/local/bin/vpblu-controller"}, Env: []string{"PATH=/usr/local/bin"},
		Created: time.Unix(0, 0).UTC(), Version: "0.0.0-test",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("image config (-want +got):\n%s", diff)
	}

	files, bin := layerFiles(t, img)
	if diff := cmp.Diff([]string{"usr/", "usr/local/", "usr/local/bin/", "usr/local/bin/vpblu-controller"}, files); diff != "" {
		t.Errorf("files in the image, no shell or anything else (-want +got):\n%s", diff)
	}
	if err := checkStatic(bytes.NewReader(bin), runtime.GOARCH); err != nil {
		t.Errorf("the binary in the image: %v", err)
	}
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary has a %s program header: it is not static", p.Type)
		}
	}

	// The OCI layout holds one index, tagged, of one manifest for the
	// platform, whose config is the tarball image's.
	lp, err := layout.FromPath(w.Layout)
	if err != nil {
		t.Fatal(err)
	}
	top, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	tm, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(tm.Manifests) != 1 || tm.Manifests[0].MediaType != types.OCIImageIndex ||
		tm.Manifests[0].Annotations[refNameAnnotation] != "0.0.0-test" || tm.Manifests[0].Digest != w.Index {
		t.Fatalf("index.json = %+v, want one image index %s tagged 0.0.0-test", tm.Manifests, w.Index)
	}
	idx, err := top.ImageIndex(w.Index)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Platform == nil || im.Manifests[0].Platform.String() != platform.String() ||
		im.Manifests[0].MediaType != types.OCIManifestSchema1 {
		t.Fatalf("image index = %+v, want one OCI manifest for %s", im.Manifests, platform)
	}
	limg, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := limg.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Errorf("%d layers, want 1", len(layers))
	}
	lc, _ := limg.ConfigName()
	tc, _ := img.ConfigName()
	if lc != tc {
		t.Errorf("the layout's config %s is not the tarball's %s", lc, tc)
	}

	// Same binary, same time: same image.
	again, err := newImage(bin, spec, imageOptions{Platform: platform, Version: "0.0.0-test", Created: time.Unix(0, 0).UTC()})
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := limg.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("rebuilding gives %s, first build %s: not reproducible", d2, d1)
	}
}

// An image never carries a binary that needs a loader or libraries the
// empty base does not have.
func TestRefusesDynamicBinaries(t *testing.T) {
	dynamic, err := exec.LookPath("ls")
	if err != nil {
		t.Fatalf("no dynamically linked binary to test with: %v", err)
	}
	bin, err := os.ReadFile(dynamic)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkStatic(bytes.NewReader(bin), runtime.GOARCH); !errors.Is(err, ErrNotStatic) {
		t.Fatalf("checkStatic(%s) = %v, want ErrNotStatic", dynamic, err)
	}
	_, err = newImage(bin, specNamed(t, "vpblu-agent"), imageOptions{Platform: v1.Platform{OS: "linux", Architecture: runtime.GOARCH}})
	if !errors.Is(err, ErrNotStatic) {
		t.Fatalf("newImage with %s = %v, want ErrNotStatic", dynamic, err)
	}
	if err := checkStatic(strings.NewReader("#!/bin/sh\n"), runtime.GOARCH); err == nil {
		t.Error("a shell script passed as a static binary")
	}
}

// The images run as the SPEC and the chart expect: the controller
// unprivileged, the agent as root.
func TestSpecs(t *testing.T) {
	type row struct{ Name, Package, User, Entrypoint string }
	var got []row
	for _, s := range Specs {
		got = append(got, row{s.Name, s.Package, s.User, s.Path()})
	}
	want := []row{
		{"vpblu-controller", "./cmd/vpblu-controller", "65532:65532", "/usr/local/bin/vpblu-controller"},
		{"vpblu-agent", "./cmd/vpblu-agent", "0:0", "/usr/local/bin/vpblu-agent"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("images (-want +got):\n%s", diff)
	}
}

// The default tag is the chart's appVersion, so the chart's default
// images are the ones built; platforms other than Linux on amd64 or arm64,
// unknown images and malformed tags are refused.
func TestFlags(t *testing.T) {
	o, err := parse([]string{"--root", root})
	if err != nil {
		t.Fatal(err)
	}
	want, err := appVersion(filepath.Join(root, chartFile))
	if err != nil {
		t.Fatal(err)
	}
	if o.tag != want || want == "" {
		t.Errorf("default tag %q, chart appVersion %q", o.tag, want)
	}
	for _, args := range [][]string{
		{"--platforms", "linux/s390x"},
		{"--platforms", "windows/amd64"},
		{"--platforms", ","},
		{"--only", "vpblu-dashboard"},
		{"--tag", "has space"},
	} {
		if _, err := parse(append([]string{"--root", root}, args...)); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func specNamed(t *testing.T, name string) Spec {
	t.Helper()
	for _, s := range Specs {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no image %s", name)
	return Spec{}
}

// layerFiles lists the image's files (one layer) and returns the content
// of the last regular file.
func layerFiles(t *testing.T, img v1.Image) ([]string, []byte) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var names []string
	var bin []byte
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Typeflag == tar.TypeReg {
			if h.Mode&0o111 == 0 || h.Uid != 0 || h.Gid != 0 {
				t.Errorf("%s: mode %o owner %d:%d, want an executable owned by root", h.Name, h.Mode, h.Uid, h.Gid)
			}
			if bin, err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	return names, bin
}
