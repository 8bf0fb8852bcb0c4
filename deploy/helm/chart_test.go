package helm_test

import (
	"flag"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/deploy"
	"github.com/lumbrjx/vpblu/deploy/helm"
	"github.com/lumbrjx/vpblu/tools/testenv"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current chart")

// The chart's crds directory is what `make generate-api` copies from
// deploy/crds; a stale copy installs other CRDs than the ones tested.
func TestChartCRDsAreDeployCRDs(t *testing.T) {
	want := map[string]string{}
	names, err := fs.Glob(deploy.CRDs, "crds/*.yaml")
	if err != nil || len(names) == 0 {
		t.Fatalf("no CRDs in deploy/crds: %v", err)
	}
	for _, n := range names {
		b, err := deploy.CRDs.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		want[path.Base(n)] = string(b)
	}
	got := map[string]string{}
	entries, err := fs.ReadDir(helm.Chart, helm.ChartDir+"/crds")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := helm.Chart.ReadFile(helm.ChartDir + "/crds/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		got[e.Name()] = string(b)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("deploy/helm/vpblu/crds differs from deploy/crds (-deploy/crds +chart); run make generate-api:\n%s", diff)
	}

	rel, err := helm.Render(helm.Options{KubeVersion: testenv.KubernetesVersion})
	if err != nil {
		t.Fatal(err)
	}
	var installed []string
	for _, c := range rel.CRDs {
		installed = append(installed, path.Base(c.Source))
		if c.Kind != "CustomResourceDefinition" {
			t.Errorf("%s is a %s", c.Source, c.Kind)
		}
	}
	var shipped []string
	for _, n := range names {
		shipped = append(shipped, path.Base(n))
	}
	if diff := cmp.Diff(shipped, installed); diff != "" {
		t.Errorf("CRDs helm installs (-deploy/crds +installed):\n%s", diff)
	}
}

// The defaults render to the golden file; `go test -update` rewrites it
// after a deliberate change, and the diff is reviewed.
func TestRenderedDefaultsGolden(t *testing.T) {
	r := render(t, "")
	got := r.rel.String() + "---\n# NOTES.txt\n" + r.rel.Notes
	// The dashboard's password is random on every render.
	got = regexp.MustCompile(`(?m)^(  (password|htpasswd): ).+$`).ReplaceAllString(got, "${1}<random>")
	file := filepath.Join("testdata", "defaults.golden")
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("rendered defaults differ from %s (-want +got); if intended, go test -update:\n%s", file, diff)
	}
}

// policies.install adds exactly the FullMesh TunnelPolicy and the weekly
// RotationPolicy, and they are the samples users read in deploy/samples.
func TestStarterPoliciesAreTheSamples(t *testing.T) {
	kinds := func(r rendered) map[string]bool {
		m := map[string]bool{}
		for _, o := range r.objs {
			m[o.GetObjectKind().GroupVersionKind().Kind+"/"+o.GetName()] = true
		}
		return m
	}
	base, with := kinds(render(t, "")), render(t, "policies: {install: true}")
	var added []string
	for k := range kinds(with) {
		if !base[k] {
			added = append(added, k)
		}
	}
	if diff := cmp.Diff([]string{"RotationPolicy/weekly", "TunnelPolicy/fullmesh"}, slices.Sorted(slices.Values(added))); diff != "" {
		t.Errorf("objects policies.install adds (-want +got):\n%s", diff)
	}

	var tunnel v1alpha1.TunnelPolicy
	readSample(t, "samples/tunnelpolicy-fullmesh.yaml", &tunnel)
	gotTunnel := one[*v1alpha1.TunnelPolicy](t, with, tunnel.Name)
	if diff := cmp.Diff(tunnel.Spec, gotTunnel.Spec); diff != "" {
		t.Errorf("TunnelPolicy spec (-sample +chart):\n%s", diff)
	}
	var rotation v1alpha1.RotationPolicy
	readSample(t, "samples/rotationpolicy.yaml", &rotation)
	gotRotation := one[*v1alpha1.RotationPolicy](t, with, rotation.Name)
	if diff := cmp.Diff(rotation.Spec, gotRotation.Spec); diff != "" {
		t.Errorf("RotationPolicy spec (-sample +chart):\n%s", diff)
	}
}

func readSample(t *testing.T, name string, into any) {
	t.Helper()
	b, err := deploy.Samples.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, into); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// values.schema.json refuses bad values before anything is rendered, and
// says which value is wrong.
func TestValuesSchemaRefusesBadValues(t *testing.T) {
	for _, tc := range []struct {
		name, values string
		// path is the JSON pointer the refusal must name.
		path string
	}{
		{"a cluster CIDR without a prefix length", `clusterCIDRs: [10.244.0.0]`, "/clusterCIDRs/0"},
		{"an IPv4 prefix longer than 32", `clusterCIDRs: [10.244.0.0/33]`, "/clusterCIDRs/0"},
		{"no cluster CIDR", `clusterCIDRs: []`, "/clusterCIDRs"},
		{"a misspelled key", `controler: {replicas: 2}`, "controler"},
		{"a misspelled nested key", `agent: {privilieged: false}`, "privilieged"},
		{"zero controller replicas", `controller: {replicas: 0}`, "/controller/replicas"},
		{"an unknown log level", `logLevel: verbose`, "/logLevel"},
		{"a lease duration without a unit", `controller: {leaseDuration: "15"}`, "/controller/leaseDuration"},
		{"a listen port out of range", `policies: {tunnel: {listenPort: 70000}}`, "/policies/tunnel/listenPort"},
		{"a stream port of 0", `controller: {streamPort: 0}`, "/controller/streamPort"},
		{"an unknown WireGuard backend", `agent: {backend: ebpf}`, "/agent/backend"},
		{"an extra argument that is not a flag", `agent: {extraArgs: [attach=legacy]}`, "/agent/extraArgs/0"},
		{"a digest that is not sha256", `controller: {image: {digest: latest}}`, "/controller/image/digest"},
		{"an image tag with a colon", `agent: {image: {tag: "a:b"}}`, "/agent/image/tag"},
		{"an unknown pull policy", `agent: {image: {pullPolicy: Sometimes}}`, "/agent/image/pullPolicy"},
		{"an empty rotation schedule", `policies: {rotation: {schedule: ""}}`, "/policies/rotation/schedule"},
		{"a policy name that is not a DNS name", `policies: {tunnel: {name: Full_Mesh}}`, "/policies/tunnel/name"},
		{"an MTU overhead below WireGuard's", `agent: {mtuOverhead: 20}`, "/agent/mtuOverhead"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			values := map[string]any{}
			if err := yaml.Unmarshal([]byte(tc.values), &values); err != nil {
				t.Fatal(err)
			}
			_, err := helm.Render(helm.Options{KubeVersion: testenv.KubernetesVersion, Values: values})
			if err == nil {
				t.Fatalf("accepted %s", tc.values)
			}
			if !strings.Contains(err.Error(), tc.path) {
				t.Errorf("refusal does not name %s:\n%v", tc.path, err)
			}
		})
	}
}

// The chart states the Kubernetes versions it needs: daemon tokens must
// carry the node they are bound to.
func TestRefusesKubernetesWithoutNodeBoundTokens(t *testing.T) {
	for _, tc := range []struct {
		version string
		ok      bool
	}{
		{"v1.29.9", false},
		{"v1.30.0", true},
		{testenv.KubernetesVersion, true},
	} {
		_, err := helm.Render(helm.Options{KubeVersion: tc.version})
		if got := err == nil; got != tc.ok {
			t.Errorf("Kubernetes %s: rendered = %v, want %v (err %v)", tc.version, got, tc.ok, err)
		}
	}
}
