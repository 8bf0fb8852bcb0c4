package e2e

import (
	"fmt"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
)

// TestDeploy (§12.1): the CRDs are installed, a controller leads, and
// every node's agent is connected and reports a public key.
func TestDeploy(t *testing.T, c Cluster) {
	ctx := ctxFor(t, 2*time.Minute)
	for _, name := range []string{"vpblunodes", "tunnelpolicies", "routepolicies", "blockpolicies", "rotationpolicies"} {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := c.Client().Get(ctx, types.NamespacedName{Name: name + ".vpblu.io"}, crd); err != nil {
			t.Errorf("CRD %s: %v", name, err)
		}
	}
	took := eventually(t, 60*time.Second, 100*time.Millisecond, "every node's agent connected with a public key", func() (bool, string) {
		for _, n := range c.Nodes() {
			vn := &v1alpha1.VpbluNode{}
			if err := c.Client().Get(ctx, types.NamespacedName{Name: n.Name}, vn); err != nil {
				return false, fmt.Sprintf("VpbluNode %s: %v", n.Name, err)
			}
			if vn.Status.PublicKey == "" || !meta.IsStatusConditionTrue(vn.Status.Conditions, v1alpha1.ConditionConnected) {
				return false, fmt.Sprintf("VpbluNode %s: key %q, conditions %v", n.Name, vn.Status.PublicKey, vn.Status.Conditions)
			}
			if got := string(vn.Status.Backend); got != c.Backend() {
				return false, fmt.Sprintf("VpbluNode %s reports backend %q, want %q", n.Name, got, c.Backend())
			}
		}
		return true, ""
	})
	figure(t, "deploy-agents-connected-ms", ms(took))
	// Agents hold warm streams to every replica, so they can be connected
	// before the election settles; a leader must follow within a lease.
	eventually(t, 60*time.Second, 100*time.Millisecond, "a controller leads", func() (bool, string) {
		if _, err := c.Leader(ctx); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

// TestFullMesh (§12.2, §12.14): a FullMesh TunnelPolicy peers every node
// with every other, handshakes complete within 2 s, and pods ping across
// nodes over IPv4 and IPv6.
func TestFullMesh(t *testing.T, c Cluster) {
	ctx := ctxFor(t, 3*time.Minute)
	// Start from no mesh, so formation is measured from the policy.
	if err := deleteIfExists(ctx, c.Client(), fullMesh(c.ListenPort())); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, 100*time.Millisecond, "no peers without a TunnelPolicy", func() (bool, string) {
		for _, n := range c.Nodes() {
			peers, err := c.WireGuard(ctx, n.Name)
			if err != nil {
				return false, err.Error()
			}
			if len(peers) != 0 {
				return false, fmt.Sprintf("%s still has %d peers", n.Name, len(peers))
			}
		}
		return true, ""
	})
	start := time.Now()
	if err := c.Client().Create(ctx, fullMesh(c.ListenPort())); err != nil {
		t.Fatal(err)
	}
	took := waitMesh(t, c, start, 30*time.Second)
	figure(t, "mesh-formation-ms", ms(took))
	checkTiming(t, "mesh formation", took, 2*time.Second)
	for _, n := range c.Nodes() {
		peers, err := c.WireGuard(ctx, n.Name)
		if err != nil {
			t.Fatal(err)
		}
		if len(peers) != len(c.Nodes())-1 {
			t.Errorf("%s has %d peers, want %d", n.Name, len(peers), len(c.Nodes())-1)
		}
	}
	pingAll(t, c)
}
