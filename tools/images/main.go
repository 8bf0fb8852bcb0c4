package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"sigs.k8s.io/yaml"
)

// chartFile holds appVersion, the default tag.
const chartFile = "deploy/helm/vpblu/Chart.yaml"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

// options are the parsed flags.
type options struct {
	root, out, registry, tag string
	platforms                []v1.Platform
	only                     []string
	created                  time.Time
}

func parse(args []string) (options, error) {
	fs := flag.NewFlagSet("images", flag.ContinueOnError)
	var o options
	var platforms, only string
	fs.StringVar(&o.root, "root", ".", "module root")
	fs.StringVar(&o.out, "out", "bin/images", "output directory")
	fs.StringVar(&o.registry, "registry", "ghcr.io/lumbrjx", "registry and namespace of the images")
	fs.StringVar(&o.tag, "tag", "", "image tag (default the chart's appVersion, from "+chartFile+")")
	fs.StringVar(&platforms, "platforms", "linux/"+runtime.GOARCH, "comma-separated platforms; the tarball holds the first")
	fs.StringVar(&only, "only", "", "comma-separated image names to build (default all)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, s := range split(platforms) {
		p, err := v1.ParsePlatform(s)
		if err != nil {
			return o, fmt.Errorf("--platforms: %w", err)
		}
		if _, ok := machines[p.Architecture]; !ok || p.OS != "linux" || p.Variant != "" {
			return o, fmt.Errorf("--platforms: %s: want linux/amd64 or linux/arm64", s)
		}
		o.platforms = append(o.platforms, *p)
	}
	if len(o.platforms) == 0 {
		return o, errors.New("--platforms: none given")
	}
	o.only = split(only)
	for _, n := range o.only {
		if !slices.ContainsFunc(Specs, func(s Spec) bool { return s.Name == n }) {
			return o, fmt.Errorf("--only: no image %q", n)
		}
	}
	if o.tag == "" {
		v, err := appVersion(filepath.Join(o.root, chartFile))
		if err != nil {
			return o, err
		}
		o.tag = v
	}
	if _, err := name.NewTag(o.registry + "/x:" + o.tag); err != nil {
		return o, fmt.Errorf("--tag %q: %w", o.tag, err)
	}
	epoch := int64(0)
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return o, fmt.Errorf("SOURCE_DATE_EPOCH: %w", err)
		}
		epoch = n
	}
	o.created = time.Unix(epoch, 0).UTC()
	return o, nil
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// appVersion reads a chart's appVersion.
func appVersion(file string) (string, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("reading the chart's appVersion: %w", err)
	}
	var c struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(raw, &c); err != nil {
		return "", fmt.Errorf("%s: %w", file, err)
	}
	if c.AppVersion == "" {
		return "", fmt.Errorf("%s: no appVersion", file)
	}
	return c.AppVersion, nil
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parse(args)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "vpblu-images-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	for _, s := range Specs {
		if len(o.only) > 0 && !slices.Contains(o.only, s.Name) {
			continue
		}
		tag, err := name.NewTag(o.registry + "/" + s.Name + ":" + o.tag)
		if err != nil {
			return err
		}
		w, err := build(ctx, s, tag, o, work)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s %s\n  %s\n  %s (index %s)\n", tag, platformList(o.platforms), w.Tarball, w.Layout, w.Index)
	}
	return nil
}

// build compiles s for every platform and writes its images.
func build(ctx context.Context, s Spec, tag name.Tag, o options, work string) (written, error) {
	var imgs []platformImage
	for _, p := range o.platforms {
		bin, err := compile(ctx, s, compileOptions{Root: o.root, Dir: work, Version: o.tag, Platform: p})
		if err != nil {
			return written{}, err
		}
		data, err := os.ReadFile(bin)
		if err != nil {
			return written{}, err
		}
		img, err := newImage(data, s, imageOptions{Platform: p, Version: o.tag, Created: o.created})
		if err != nil {
			return written{}, err
		}
		imgs = append(imgs, platformImage{Platform: p, Image: img})
	}
	return write(o.out, tag, imgs)
}

func platformList(ps []v1.Platform) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, ",")
}
