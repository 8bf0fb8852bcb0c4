package meshview

import (
	"fmt"
	"io"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
)

// WriteDOT draws the mesh for Graphviz (`kubectl vpblu graph | dot -Tsvg`):
// one box per node with its endpoint, key generation and peers up, one
// edge per wanted tunnel. A node is green when its daemon is ready with a
// handshake on every tunnel, orange when not, red when isolated and grey
// when outside the mesh; an edge is solid when both ends report every
// tunnel up and dashed otherwise (the daemons report counts, not pairs).
func WriteDOT(w io.Writer, m *Mesh) error {
	var b strings.Builder
	fmt.Fprintf(&b, "graph vpblu {\n")
	fmt.Fprintf(&b, "\tgraph [label=%s, labelloc=t, overlap=false, splines=true];\n", quote(fmt.Sprintf("vpblu mesh: %d nodes, %d tunnels", len(m.Nodes), len(m.Tunnels))))
	fmt.Fprintf(&b, "\tnode [shape=box, style=\"rounded,filled\", fillcolor=white, fontname=Helvetica];\n")
	fmt.Fprintf(&b, "\tedge [fontname=Helvetica];\n")
	healthy := map[string]bool{}
	for _, n := range m.Nodes {
		healthy[n.Name] = n.Healthy()
		st := n.Status()
		label := []string{n.Name}
		if st.Endpoint != "" {
			label = append(label, st.Endpoint)
		}
		if st.KeyGeneration > 0 {
			label = append(label, fmt.Sprintf("key gen %d", st.KeyGeneration))
		}
		if st.RotationPhase != "" && st.RotationPhase != v1alpha1.RotationIdle {
			label = append(label, "rotation: "+string(st.RotationPhase))
		}
		if p := peers(n); p != "-" {
			label = append(label, "peers up "+p)
		}
		if s := n.Note(); s != "" {
			label = append(label, s)
		}
		fmt.Fprintf(&b, "\t%s [label=%s, color=%s];\n", quote(n.Name), quote(strings.Join(label, "\n")), nodeColor(n, healthy[n.Name]))
	}
	for _, t := range m.Tunnels {
		style := "dashed"
		color := "orange"
		if healthy[t.A] && healthy[t.B] {
			style, color = "solid", "darkgreen"
		}
		fmt.Fprintf(&b, "\t%s -- %s [style=%s, color=%s];\n", quote(t.A), quote(t.B), style, color)
	}
	fmt.Fprintf(&b, "}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// Healthy: a mesh member whose daemon applied its state and has a recent
// handshake with every peer it should have.
func (n Node) Healthy() bool {
	if !n.Want.Member || n.VpbluNode == nil {
		return false
	}
	st := n.VpbluNode.Status
	want := int32(len(n.WantPeers))
	return meta.IsStatusConditionTrue(st.Conditions, v1alpha1.ConditionReady) && st.PeersTotal == want && st.PeersUp == want
}

func nodeColor(n Node, healthy bool) string {
	switch {
	case n.Want.Isolated || n.Want.QuarantinePending:
		return "red"
	case !n.Want.Member:
		return "grey"
	case healthy:
		return "darkgreen"
	}
	return "orange"
}

// quote makes s a DOT string (double quotes, backslash escapes; a
// newline becomes a centred line break).
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}
