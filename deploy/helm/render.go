package helm

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"helm.sh/helm/v4/pkg/chart/common"
	commonutil "helm.sh/helm/v4/pkg/chart/common/util"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/engine"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	"sigs.k8s.io/yaml"
)

// Defaults of Options.
const (
	DefaultReleaseName = "vpblu"
	DefaultNamespace   = "vpblu-system"
)

// ErrHooks: the chart rendered Helm hooks, which Render does not run.
var ErrHooks = errors.New("chart renders hooks")

// Options say how to render, like the arguments of `helm template`.
type Options struct {
	// ReleaseName is the release's name (default DefaultReleaseName).
	ReleaseName string
	// Namespace is the release namespace (default DefaultNamespace).
	Namespace string
	// Values are merged over values.yaml, as -f and --set are.
	Values map[string]any
	// KubeVersion is the Kubernetes version rendered for, such as
	// "v1.37.2" (default Helm's, which is v1.20 inside tests).
	KubeVersion string
	// Strict fails when a template reads a value values.yaml does not
	// have, like `helm lint --strict`.
	Strict bool
}

// Manifest is one rendered object.
type Manifest struct {
	// Source is the chart file it came from: "vpblu/templates/x.yaml".
	Source string
	// Kind and Name are the object's.
	Kind, Name string
	// YAML is the object's document.
	YAML string
}

// Release is a rendered chart.
type Release struct {
	// CRDs are the crds directory's files in name order. Helm installs
	// them before everything else and never templates or upgrades them.
	CRDs []Manifest
	// Manifests are the rendered objects in Helm's install order.
	Manifests []Manifest
	// Notes is NOTES.txt, rendered.
	Notes string
}

// Render renders the chart.
func Render(opts Options) (*Release, error) {
	if opts.ReleaseName == "" {
		opts.ReleaseName = DefaultReleaseName
	}
	if opts.Namespace == "" {
		opts.Namespace = DefaultNamespace
	}
	ch, err := Load()
	if err != nil {
		return nil, err
	}
	caps := common.DefaultCapabilities.Copy()
	if opts.KubeVersion != "" {
		kv, err := common.ParseKubeVersion(opts.KubeVersion)
		if err != nil {
			return nil, fmt.Errorf("kube version: %w", err)
		}
		caps.KubeVersion = *kv
	}
	if c := ch.Metadata.KubeVersion; c != "" && !chartutil.IsCompatibleRange(c, caps.KubeVersion.String()) {
		return nil, fmt.Errorf("chart requires kubeVersion %s, not %s", c, caps.KubeVersion.String())
	}
	values := opts.Values
	if values == nil {
		values = map[string]any{}
	}
	top, err := commonutil.ToRenderValuesWithSchemaValidation(ch, values, common.ReleaseOptions{
		Name: opts.ReleaseName, Namespace: opts.Namespace, Revision: 1, IsInstall: true,
	}, caps, false)
	if err != nil {
		return nil, fmt.Errorf("values: %w", err)
	}
	files, err := engine.Engine{Strict: opts.Strict}.RenderWithContext(context.Background(), ch, top)
	if err != nil {
		return nil, fmt.Errorf("rendering: %w", err)
	}

	rel := &Release{}
	notes := path.Join(ch.Name(), "templates", "NOTES.txt")
	rel.Notes = files[notes]
	delete(files, notes)
	hooks, manifests, err := releaseutil.SortManifests(files, caps.APIVersions, releaseutil.InstallOrder)
	if err != nil {
		return nil, fmt.Errorf("sorting manifests: %w", err)
	}
	if len(hooks) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrHooks, hooks[0].Path)
	}
	for _, m := range manifests {
		var kind, name string
		if m.Head != nil {
			kind = m.Head.Kind
			if m.Head.Metadata != nil {
				name = m.Head.Metadata.Name
			}
		}
		rel.Manifests = append(rel.Manifests, Manifest{Source: m.Name, Kind: kind, Name: name, YAML: m.Content})
	}
	for _, crd := range ch.CRDObjects() {
		var head releaseutil.SimpleHead
		if err := yaml.Unmarshal(crd.File.Data, &head); err != nil || head.Metadata == nil {
			return nil, fmt.Errorf("CRD %s: no metadata.name: %v", crd.Filename, err)
		}
		rel.CRDs = append(rel.CRDs, Manifest{Source: crd.Filename, Kind: head.Kind, Name: head.Metadata.Name, YAML: string(crd.File.Data)})
	}
	sort.Slice(rel.CRDs, func(i, j int) bool { return rel.CRDs[i].Source < rel.CRDs[j].Source })
	return rel, nil
}

// String is the release as `helm template` prints it (without
// --include-crds).
func (r *Release) String() string {
	var b strings.Builder
	for _, m := range r.Manifests {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", m.Source, m.YAML)
	}
	return strings.TrimSpace(b.String()) + "\n"
}
