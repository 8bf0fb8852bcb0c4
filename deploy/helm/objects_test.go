package helm_test

import (
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/lumbrjx/vpblu/deploy/helm"
	"github.com/lumbrjx/vpblu/tools/testenv"
)

// renderCase is one way of installing the chart.
type renderCase struct {
	name string
	// values are YAML, as a user's -f file.
	values string
}

// renderCases cover every template branch.
var renderCases = []renderCase{
	{name: "defaults"},
	{name: "starter policies", values: `policies: {install: true}`},
	{name: "unprivileged agent, one controller, dual-stack, digests and extras", values: `
clusterCIDRs: [10.244.0.0/16, "fd00:10:244::/56"]
imagePullSecrets: [{name: regcred}]
ca: {secretName: my-ca}
controller:
  replicas: 1
  image: {digest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
  tolerations: [{key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoSchedule}]
  affinity: {nodeAffinity: {preferredDuringSchedulingIgnoredDuringExecution: [{weight: 1, preference: {matchExpressions: [{key: kubernetes.io/os, operator: In, values: [linux]}]}}]}}
  podAnnotations: {example.com/team: net}
  extraArgs: [--status-qps=50]
agent:
  privileged: false
  backend: userspace
  podInterfaces: [veth*, cni*]
  image: {tag: dev, pullPolicy: Never}
  extraArgs: [--attach=legacy]
policies: {install: true, tunnel: {name: mesh, listenPort: 51900, strict: false}}
`},
}

// rendered is a rendered chart with every object decoded into its type.
type rendered struct {
	rel  *helm.Release
	objs []client.Object
}

// render renders the chart for the test API server's Kubernetes version,
// strictly (a template reading a value values.yaml lacks fails), and
// decodes every object strictly into its Go type: an unknown or
// duplicated field fails.
func render(t *testing.T, valuesYAML string) rendered {
	t.Helper()
	values := map[string]any{}
	if err := yaml.Unmarshal([]byte(valuesYAML), &values); err != nil {
		t.Fatalf("test values: %v", err)
	}
	rel, err := helm.Render(helm.Options{KubeVersion: testenv.KubernetesVersion, Strict: true, Values: values})
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	r := rendered{rel: rel}
	for _, m := range rel.Manifests {
		obj, err := decodeStrict(m.YAML)
		if err != nil {
			t.Fatalf("%s (%s %s): %v", m.Source, m.Kind, m.Name, err)
		}
		r.objs = append(r.objs, obj)
	}
	return r
}

var scheme = testenv.NewScheme()

func decodeStrict(doc string) (client.Object, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
		return nil, fmt.Errorf("type: %w", err)
	}
	gvk := schema.FromAPIVersionAndKind(tm.APIVersion, tm.Kind)
	ro, err := scheme.New(gvk)
	if err != nil {
		return nil, fmt.Errorf("no Go type: %w", err)
	}
	if err := yaml.UnmarshalStrict([]byte(doc), ro); err != nil {
		return nil, fmt.Errorf("strict decoding into %T: %w", ro, err)
	}
	obj, ok := ro.(client.Object)
	if !ok {
		return nil, fmt.Errorf("%T is not an API object", ro)
	}
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	return obj, nil
}

// all returns the objects of type T.
func all[T client.Object](r rendered) []T {
	var out []T
	for _, o := range r.objs {
		if v, ok := o.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// one returns the object of type T named name.
func one[T client.Object](t *testing.T, r rendered, name string) T {
	t.Helper()
	for _, o := range all[T](r) {
		if o.GetName() == name {
			return o
		}
	}
	var zero T
	t.Fatalf("no %T named %s rendered", zero, name)
	return zero
}

// flagValue returns the value of --name in args, and whether it is there.
func flagValue(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}
