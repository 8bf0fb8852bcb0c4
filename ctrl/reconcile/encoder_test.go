package reconcile

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/core/wire"
)

// The encoder must give exactly what core/wire gives, for every node, as
// the states change.
func TestEncoderEqualsWire(t *testing.T) {
	var nodes []desired.Node
	for i := 1; i <= 6; i++ {
		n := testNode(i, true)
		n.PodCIDRs = append(n.PodCIDRs, netip.MustParsePrefix(fmt.Sprintf("2001:db8:%d::/64", i)))
		nodes = append(nodes, n)
	}
	pol := desired.Policies{
		Tunnel: fullMesh.Tunnel,
		Route: []v1alpha1.RoutePolicy{{ObjectMeta: metav1.ObjectMeta{Name: "gw"},
			Spec: v1alpha1.RoutePolicySpec{CIDRs: []v1alpha1.CIDR{"10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16"}, Via: []v1alpha1.NodeName{"n2"}}}},
		Block: []v1alpha1.BlockPolicy{{ObjectMeta: metav1.ObjectMeta{Name: "b"},
			Spec: v1alpha1.BlockPolicySpec{Rules: []v1alpha1.BlockRule{{From: []v1alpha1.CIDR{"100.64.1.0/24"}, To: []v1alpha1.CIDR{"100.64.2.0/24"}}}}}},
	}
	e, _ := desired.NewEngine(desired.Snapshot{Nodes: nodes, Policies: pol})
	var enc encoder
	check := func(step string) {
		t.Helper()
		for name, st := range e.States() {
			if d := cmp.Diff(wire.EncodeState(st), enc.syncState(st), protocmp.Transform()); d != "" {
				t.Errorf("%s: %s (-wire +encoder):\n%s", step, name, d)
			}
		}
	}
	check("start")
	check("again, from the cache")
	n := testNode(3, true)
	n.PublicKey = key(99)
	if _, err := e.UpsertNode(n); err != nil {
		t.Fatal(err)
	}
	check("after a key change")
	e.RemoveNode("n5")
	check("after a removal")
	e.SetPolicies(desired.Policies{Tunnel: fullMesh.Tunnel})
	check("after the policies changed")
}
