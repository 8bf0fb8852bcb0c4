package meshview

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/ctrl/meshview/meshviewtest"
	"github.com/lumbrjx/vpblu/tools/testenv"
)

func TestLoadSetsTheControllersMeshBesideTheDaemonsReports(t *testing.T) {
	env := testenv.Start(t)
	ctx := t.Context()
	meshviewtest.Seed(t, ctx, env.Client)

	m, err := Load(ctx, env.Client, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range m.Nodes {
		names = append(names, n.Name)
	}
	if diff := cmp.Diff([]string{"a", "b", "c", "d", "gone"}, names); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}
	// c is isolated, d has no key, gone has no Node: only a and b mesh.
	if diff := cmp.Diff([]Tunnel{{A: "a", B: "b"}}, m.Tunnels); diff != "" {
		t.Errorf("tunnels (-want +got):\n%s", diff)
	}
	if !m.Nodes[2].Want.Isolated || m.Nodes[3].Want.Member || m.Nodes[4].HasNode {
		t.Errorf("want c isolated, d outside the mesh, gone without a Node: %+v", m.Nodes)
	}

	t.Run("verify names every failed check and passes the rest", func(t *testing.T) {
		var failed []string
		for _, c := range Verify(m) {
			if !c.OK {
				failed = append(failed, c.Subject+": "+c.What)
			}
		}
		want := []string{"BlockPolicy/quarantine: applied", "node/d: has a VpbluNode", "node/gone: has a Kubernetes Node"}
		if diff := cmp.Diff(want, failed); diff != "" {
			t.Errorf("failed checks (-want +got):\n%s", diff)
		}
	})

	t.Run("verify fails a node missing a handshake", func(t *testing.T) {
		vn := &v1alpha1.VpbluNode{}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: "b"}, vn); err != nil {
			t.Fatal(err)
		}
		vn.Status.PeersUp = 0
		if err := env.Client.Status().Update(ctx, vn); err != nil {
			t.Fatal(err)
		}
		m, err := Load(ctx, env.Client, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		var got []Check
		for _, c := range Verify(m) {
			if !c.OK && c.Subject == "node/b" {
				got = append(got, c)
			}
		}
		want := []Check{{Subject: "node/b", What: "1 tunnels with a recent handshake", Detail: "the daemon reports 0 of 1 peers up, the controller wants 1"}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("node b's failed checks (-want +got):\n%s", diff)
		}
	})

	t.Run("status has a row per node and the policies", func(t *testing.T) {
		var out bytes.Buffer
		if err := WriteStatus(&out, m); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			"a      198.18.0.1:51820", "1/1", "isolated", "no key reported", "no Kubernetes Node",
			"5 nodes, 1 tunnels wanted", "BlockPolicy/quarantine   3/4", "TunnelPolicy/fullmesh    4/4",
		} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("status lacks %q:\n%s", want, out.String())
			}
		}
	})

	t.Run("graph draws each wanted tunnel once", func(t *testing.T) {
		var out bytes.Buffer
		if err := WriteDOT(&out, m); err != nil {
			t.Fatal(err)
		}
		dot := out.String()
		for _, want := range []string{
			`graph [label="vpblu mesh: 5 nodes, 1 tunnels"`,
			`"a" -- "b" [style=solid, color=darkgreen];`,
			`"c" [label="c\n198.18.0.3:51820\nkey gen 1\npeers up 0/0\nisolated", color=red];`,
			`"d" [label="d\nno key reported", color=grey];`,
		} {
			if !strings.Contains(dot, want) {
				t.Errorf("graph lacks %s:\n%s", want, dot)
			}
		}
		if n := strings.Count(dot, " -- "); n != 1 {
			t.Errorf("graph has %d edges, want 1:\n%s", n, dot)
		}
	})
}
