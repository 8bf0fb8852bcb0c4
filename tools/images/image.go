package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Source is the repository images point back to.
const Source = "https://github.com/lumbrjx/vpblu"

// imageOptions describe one image to assemble.
type imageOptions struct {
	Platform v1.Platform
	// Version is the image's version label.
	Version string
	// Created stamps the config, the history and every file.
	Created time.Time
}

// newImage puts the binary bin of s into a one-layer OCI image on an empty
// base. The binary must be static.
func newImage(bin []byte, s Spec, o imageOptions) (v1.Image, error) {
	if err := checkStatic(bytes.NewReader(bin), o.Platform.Architecture); err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name, err)
	}
	layerTar, err := binaryLayer(s.Path(), bin, o.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: o.Created},
			CreatedBy: "go build " + s.Package + " (CGO_ENABLED=0)",
		},
		MediaType: types.OCILayer,
	})
	if err != nil {
		return nil, fmt.Errorf("appending layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = o.Platform.OS, o.Platform.Architecture, o.Platform.Variant
	cf.Created = v1.Time{Time: o.Created}
	cf.Config = v1.Config{
		Entrypoint: []string{s.Path()},
		User:       s.User,
		Env:        []string{"PATH=" + BinDir},
		WorkingDir: "/",
		Labels: map[string]string{
			"org.opencontainers.image.title":       s.Name,
			"org.opencontainers.image.description": s.Description,
			"org.opencontainers.image.version":     o.Version,
			"org.opencontainers.image.source":      Source,
		},
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("setting config: %w", err)
	}
	return img, nil
}

// binaryLayer is a tar holding the directories of file and file itself,
// owned by root, with every time set to created.
func binaryLayer(file string, bin []byte, created time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := strings.TrimPrefix(path.Dir(file), "/")
	var parents []string
	for d := dir; d != "." && d != ""; d = path.Dir(d) {
		parents = append([]string{d}, parents...)
	}
	for _, d := range parents {
		if err := tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: created, Format: tar.FormatPAX,
		}); err != nil {
			return nil, fmt.Errorf("layer: %w", err)
		}
	}
	if err := tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg, Name: strings.TrimPrefix(file, "/"), Mode: 0o755,
		Size: int64(len(bin)), ModTime: created, Format: tar.FormatPAX,
	}); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	return buf.Bytes(), nil
}
