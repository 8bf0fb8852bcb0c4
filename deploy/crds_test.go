package deploy_test

import (
	"context"
	"io/fs"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/lumbrjx/vpblu/deploy"
	"github.com/lumbrjx/vpblu/tools/testenv"
)

// The CRDs are tested against a real API server: validation is the
// server's OpenAPI and CEL evaluation, not ours.
func TestCRDs(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()

	t.Run("every sample is accepted", func(t *testing.T) {
		names, err := fs.Glob(deploy.Samples, "samples/*.yaml")
		if err != nil || len(names) == 0 {
			t.Fatalf("no samples: %v", err)
		}
		kinds := map[string]bool{}
		for _, name := range names {
			obj := parse(t, readSample(t, name))
			kinds[obj.GetKind()] = true
			if err := env.Client.Create(ctx, obj); err != nil {
				t.Errorf("%s refused: %v", name, err)
			}
		}
		for _, kind := range []string{"VpbluNode", "TunnelPolicy", "RoutePolicy", "BlockPolicy", "RotationPolicy"} {
			if !kinds[kind] {
				t.Errorf("no sample of kind %s", kind)
			}
		}
	})

	t.Run("defaults are filled in", func(t *testing.T) {
		obj := parse(t, "apiVersion: vpblu.io/v1alpha1\nkind: TunnelPolicy\nmetadata: {name: defaults}\nspec: {mode: FullMesh}\n")
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
		spec := obj.Object["spec"].(map[string]any)
		for field, want := range map[string]any{"listenPort": int64(51820), "persistentKeepaliveSeconds": int64(25), "strict": true} {
			if spec[field] != want {
				t.Errorf("spec.%s = %v, want default %v", field, spec[field], want)
			}
		}
	})

	for _, tc := range invalidObjects {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			obj := parse(t, tc.yaml)
			obj.SetName("invalid-" + strings.ReplaceAll(strings.ToLower(tc.name), " ", "-"))
			err := env.Client.Create(ctx, obj)
			if err == nil {
				t.Fatalf("accepted; want refusal naming %q", tc.field)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("refusal does not name the field %q:\n%v", tc.field, err)
			}
			if tc.message != "" && !strings.Contains(err.Error(), tc.message) {
				t.Errorf("refusal does not say %q:\n%v", tc.message, err)
			}
		})
	}

	t.Run("kubectl get -o wide shows the useful columns", func(t *testing.T) {
		tp := parse(t, tunnel(`{mode: FullMesh, listenPort: 51900}`))
		tp.SetName("wide")
		vn := parse(t, node(`{}`))
		vn.SetName("wide-node")
		for _, obj := range []*unstructured.Unstructured{tp, vn} {
			if err := env.Client.Create(ctx, obj); err != nil {
				t.Fatal(err)
			}
		}
		vn.Object["status"] = map[string]any{
			"publicKey": "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=", "keyGeneration": int64(3),
			"backend": "userspace", "endpoint": "198.18.0.11:51820", "mtu": int64(1420),
			"peersUp": int64(2), "peersTotal": int64(2), "rotationPhase": "Idle",
		}
		if err := env.Client.Status().Update(ctx, vn); err != nil {
			t.Fatal(err)
		}
		out, err := env.Kubectl("get", "tunnelpolicies,vpblunodes", "-o", "wide")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("\n%s", out)
		for _, want := range []string{
			"MODE", "PORT", "STRICT", "NODES", "APPLIED", "READY", "KEEPALIVE",
			"wide", "FullMesh", "51900", "true", "25",
			"ENDPOINT", "BACKEND", "PEERS UP", "PEERS", "KEY GEN", "PHASE", "PUBLIC KEY", "MTU", "LAST SEEN",
			"wide-node", "198.18.0.11:51820", "userspace", "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=", "1420", "Idle",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("kubectl get -o wide lacks %q", want)
			}
		}
	})
}

type invalid struct {
	name, field, message, yaml string
}

func tunnel(spec string) string {
	return "apiVersion: vpblu.io/v1alpha1\nkind: TunnelPolicy\nmetadata: {name: x}\nspec: " + spec
}
func route(spec string) string {
	return "apiVersion: vpblu.io/v1alpha1\nkind: RoutePolicy\nmetadata: {name: x}\nspec: " + spec
}
func block(spec string) string {
	return "apiVersion: vpblu.io/v1alpha1\nkind: BlockPolicy\nmetadata: {name: x}\nspec: " + spec
}
func rotation(spec string) string {
	return "apiVersion: vpblu.io/v1alpha1\nkind: RotationPolicy\nmetadata: {name: x}\nspec: " + spec
}
func node(spec string) string {
	return "apiVersion: vpblu.io/v1alpha1\nkind: VpbluNode\nmetadata: {name: x}\nspec: " + spec
}

var invalidObjects = []invalid{
	{"tunnel without mode", "spec.mode", "Required", tunnel(`{listenPort: 51820}`)},
	{"tunnel unknown mode", "spec.mode", "Unsupported value", tunnel(`{mode: Star}`)},
	{"tunnel port zero", "spec.listenPort", "greater than or equal to 1", tunnel(`{mode: FullMesh, listenPort: 0}`)},
	{"tunnel port above range", "spec.listenPort", "less than or equal to 65534", tunnel(`{mode: FullMesh, listenPort: 70000}`)},
	{"tunnel negative keepalive", "spec.persistentKeepaliveSeconds", "greater than or equal to 0", tunnel(`{mode: FullMesh, persistentKeepaliveSeconds: -1}`)},
	{"explicit without pairs or groups", "spec", "mode Explicit needs at least one entry in pairs or groups", tunnel(`{mode: Explicit}`)},
	{"explicit with empty pairs", "spec", "mode Explicit needs at least one entry", tunnel(`{mode: Explicit, pairs: []}`)},
	{"fullmesh with pairs", "spec", "pairs and groups must be empty", tunnel(`{mode: FullMesh, pairs: [{a: n1, b: n2}]}`)},
	{"fullmesh with groups", "spec", "pairs and groups must be empty", tunnel(`{mode: FullMesh, groups: [{name: g, selector: {}}]}`)},
	{"pair of a node with itself", "spec.pairs[0]", "a node cannot peer with itself", tunnel(`{mode: Explicit, pairs: [{a: n1, b: n1}]}`)},
	{"pair with bad node name", "spec.pairs[0].a", "should match", tunnel(`{mode: Explicit, pairs: [{a: "Node_1", b: n2}]}`)},
	{"group without name", "spec.groups[0].name", "", tunnel(`{mode: Explicit, groups: [{name: "", selector: {}}]}`)},
	{"route bad v4 cidr", "spec.cidrs[0]", "must be an IPv4 or IPv6 CIDR", route(`{cidrs: [10.0.0.0/33], via: [n1]}`)},
	{"route bad v6 cidr", "spec.cidrs[0]", "must be an IPv4 or IPv6 CIDR", route(`{cidrs: ["2001:db8::/129"], via: [n1]}`)},
	{"route cidr not an address", "spec.cidrs[0]", "must be an IPv4 or IPv6 CIDR", route(`{cidrs: [pods], via: [n1]}`)},
	{"route without cidrs", "spec.cidrs", "", route(`{cidrs: [], via: [n1]}`)},
	{"route without via", "spec.via", "", route(`{cidrs: [10.0.0.0/8], via: []}`)},
	{"route duplicate via", "spec.via[1]", "Duplicate value", route(`{cidrs: [10.0.0.0/8], via: [n1, n1]}`)},
	{"block empty", "spec", "a BlockPolicy needs at least one of rules, isolate or drain", block(`{}`)},
	{"block rule without from", "spec.rules[0].from", "", block(`{rules: [{from: [], to: [10.0.0.0/8]}]}`)},
	{"block rule without to", "spec.rules[0].to", "", block(`{rules: [{from: [10.0.0.0/8], to: []}]}`)},
	{"block rule bad v4 source", "spec.rules[0].from[0]", "must be an IPv4 or IPv6 CIDR", block(`{rules: [{from: [300.1.0.0/16], to: [10.0.0.0/8]}]}`)},
	{"block rule bad v6 destination", "spec.rules[0].to[0]", "must be an IPv4 or IPv6 CIDR", block(`{rules: [{from: [10.0.0.0/8], to: ["2001:zz8::/32"]}]}`)},
	{"block isolate bad node name", "spec.isolate[0]", "should match", block(`{isolate: ["-bad"]}`)},
	{"rotation without schedule", "spec.schedule", "Required", rotation(`{overlapWindow: 30s}`)},
	{"rotation cron with four fields", "spec.schedule", "should match", rotation(`{schedule: "0 3 * *"}`)},
	{"rotation cron minute out of range", "spec.schedule", "should match", rotation(`{schedule: "61 3 * * *"}`)},
	{"rotation cron hour out of range", "spec.schedule", "should match", rotation(`{schedule: "0 24 * * *"}`)},
	{"rotation cron six fields", "spec.schedule", "should match", rotation(`{schedule: "0 0 3 * * *"}`)},
	{"rotation cron garbage", "spec.schedule", "should match", rotation(`{schedule: "every sunday"}`)},
	{"rotation negative overlap", "spec.overlapWindow", "overlapWindow must be a positive duration", rotation(`{schedule: "@daily", overlapWindow: -5s}`)},
	{"rotation zero overlap", "spec.overlapWindow", "overlapWindow must be a positive duration", rotation(`{schedule: "@daily", overlapWindow: 0s}`)},
	{"rotation overlap not a duration", "spec.overlapWindow", "", rotation(`{schedule: "@daily", overlapWindow: soon}`)},
	{"node endpoint not an IP", "spec.endpoint.address", "must be an IPv4 or IPv6 address", node(`{endpoint: {address: gateway.example}}`)},
	{"node endpoint port zero", "spec.endpoint.port", "greater than or equal to 1", node(`{endpoint: {address: 198.18.0.1, port: 0}}`)},
}

func parse(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
		t.Fatalf("parse %q: %v", doc, err)
	}
	return obj
}

func readSample(t *testing.T, name string) string {
	t.Helper()
	raw, err := deploy.Samples.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}
