package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
)

// TestNodeJoinAndDelete (§12.5, §12.12): a node joining under load peers
// with every node without a single cleartext packet, and deleting it
// removes its peer from every other node.
func TestNodeJoinAndDelete(t *testing.T, c Cluster) {
	ensureMesh(t, c)
	ctx := ctxFor(t, 3*time.Minute)
	capture, err := c.StartCapture(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fs := startFlows(t, c, 200)
	before := len(c.Nodes())

	joined, err := c.AddNode(ctx)
	if err != nil {
		capture.Stop()
		t.Fatalf("add a node: %v", err)
	}
	removed := false
	// A failure half-way must not leave the later criteria a node more.
	t.Cleanup(func() {
		if !removed {
			rctx, cancel := context.WithTimeout(context.Background(), scaled(time.Minute))
			defer cancel()
			if err := c.RemoveNode(rctx, joined.Name); err != nil {
				t.Errorf("remove the joined node after a failure: %v", err)
			}
		}
	})
	took := waitMesh(t, c, time.Time{}, 30*time.Second)
	figure(t, "node-join-mesh-ms", ms(took))
	// Traffic to and from the new node's pods, across the mesh.
	joinFlows := newFlowSet(t)
	for _, p := range podsOn(c, joined.Name)[:1] {
		for _, q := range c.Pods() {
			if q.Node == joined.Name {
				continue
			}
			for _, fam := range families {
				for _, dir := range [][2]Pod{{p, q}, {q, p}} {
					joinFlows.add(t, c, dir[0], dir[1], fam, flowRate(100))
				}
			}
			break
		}
	}
	time.Sleep(time.Second)
	_, lostJoin, detail := joinFlows.stop(300 * time.Millisecond)
	if lostJoin != 0 {
		t.Errorf("flows to and from the joined node lost %d datagrams after the mesh formed:\n%s", lostJoin, detail)
	}
	_, lost, detail := fs.stop(300 * time.Millisecond)
	figure(t, "node-join-lost-packets", lost)
	if lost != 0 {
		t.Errorf("existing flows lost %d datagrams while a node joined:\n%s", lost, detail)
	}
	got := capture.Stop()
	figure(t, "node-join-cleartext-packets", got.Cleartext)
	if got.Cleartext != 0 {
		t.Errorf("%d cleartext pod packets on the underlay during the join, e.g.\n%v", got.Cleartext, got.Samples)
	}

	// Delete it again: every remaining node drops the peer. The mesh
	// uses the key the agent reported over its stream; the VpbluNode
	// status, written at a bounded rate, may show it a little later.
	vn := &v1alpha1.VpbluNode{}
	eventually(t, 30*time.Second, 100*time.Millisecond, "the joined node's status shows its public key", func() (bool, string) {
		if err := c.Client().Get(ctx, types.NamespacedName{Name: joined.Name}, vn); err != nil {
			return false, err.Error()
		}
		return vn.Status.PublicKey != "", "no public key in the status yet"
	})
	removed = true
	if err := c.RemoveNode(ctx, joined.Name); err != nil {
		t.Fatal(err)
	}
	took = eventually(t, 30*time.Second, 50*time.Millisecond, "every node drops the deleted node's peer", func() (bool, string) {
		for _, n := range c.Nodes() {
			peers, err := c.WireGuard(ctx, n.Name)
			if err != nil {
				return false, err.Error()
			}
			if len(peers) != before-1 {
				return false, fmt.Sprintf("%s has %d peers, want %d", n.Name, len(peers), before-1)
			}
			for _, p := range peers {
				if p.PublicKey == vn.Status.PublicKey {
					return false, fmt.Sprintf("%s still peers with %s", n.Name, joined.Name)
				}
			}
		}
		return true, ""
	})
	figure(t, "node-delete-peer-removed-ms", ms(took))
	pingAll(t, c)
}
