package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// refNameAnnotation names an index entry of an OCI layout (its tag).
const refNameAnnotation = "org.opencontainers.image.ref.name"

// platformImage is one platform's image.
type platformImage struct {
	Platform v1.Platform
	Image    v1.Image
}

// written says where an image went.
type written struct {
	Tarball, Layout string
	// Index is the digest of the multi-platform index in the layout.
	Index v1.Hash
}

// write stores the images of one repository: a docker-archive tarball of
// the first platform and an OCI layout with an index of all of them. Both
// replace what a previous run left.
func write(dir string, tag name.Tag, imgs []platformImage) (written, error) {
	if len(imgs) == 0 {
		return written{}, fmt.Errorf("%s: no images", tag)
	}
	repo := filepath.Base(tag.RepositoryStr())
	w := written{Tarball: filepath.Join(dir, repo+".tar"), Layout: filepath.Join(dir, repo)}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return written{}, err
	}
	if err := tarball.WriteToFile(w.Tarball, tag, imgs[0].Image); err != nil {
		return written{}, fmt.Errorf("writing %s: %w", w.Tarball, err)
	}

	var idx v1.ImageIndex = empty.Index
	for _, pi := range imgs {
		p := pi.Platform
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        pi.Image,
			Descriptor: v1.Descriptor{Platform: &p},
		})
	}
	digest, err := idx.Digest()
	if err != nil {
		return written{}, fmt.Errorf("index digest: %w", err)
	}
	w.Index = digest
	if err := os.RemoveAll(w.Layout); err != nil {
		return written{}, err
	}
	lp, err := layout.Write(w.Layout, empty.Index)
	if err != nil {
		return written{}, fmt.Errorf("writing %s: %w", w.Layout, err)
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{refNameAnnotation: tag.TagStr()})); err != nil {
		return written{}, fmt.Errorf("writing %s: %w", w.Layout, err)
	}
	return w, nil
}
