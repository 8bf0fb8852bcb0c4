package meshview

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
)

// WriteStatus prints the mesh as tables: nodes, policies, rotations and
// problems, in kubectl's style.
func WriteStatus(w io.Writer, m *Mesh) error {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintf(tw, "NODE\tENDPOINT\tBACKEND\tPEERS UP\tKEY GEN\tROTATION\tCONNECTED\tREADY\tLAST SEEN\tNOTE\n")
	for _, n := range m.Nodes {
		st := n.Status()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, dash(st.Endpoint), dash(string(st.Backend)),
			peers(n), dash(num(st.KeyGeneration)), dash(string(st.RotationPhase)),
			condStatus(n, v1alpha1.ConditionConnected), condStatus(n, v1alpha1.ConditionReady), age(m.Now, st.LastSeen), n.Note())
	}
	fmt.Fprintf(tw, "\n%d nodes, %d tunnels wanted\n", len(m.Nodes), len(m.Tunnels))

	if len(m.Policies) > 0 {
		fmt.Fprintf(tw, "\nPOLICY\tNODES APPLIED\tREADY\tMESSAGE\n")
		for _, p := range m.Policies {
			ready := meta.FindStatusCondition(p.Conditions, v1alpha1.ConditionReady)
			status, msg := "-", ""
			if ready != nil {
				status, msg = string(ready.Status), ready.Message
			}
			if c := meta.FindStatusCondition(p.Conditions, v1alpha1.ConditionConflict); c != nil && c.Status == metav1.ConditionTrue {
				msg = "conflict: " + c.Message
			}
			if c := meta.FindStatusCondition(p.Conditions, v1alpha1.ConditionValid); c != nil && c.Status == metav1.ConditionFalse {
				msg = "invalid: " + c.Message
			}
			fmt.Fprintf(tw, "%s/%s\t%d/%d\t%s\t%s\n", p.Kind, p.Name, p.NodesApplied, p.Nodes, status, msg)
		}
	}
	if len(m.Rotations) > 0 {
		fmt.Fprintf(tw, "\nROTATION POLICY\tSCHEDULE\tOVERLAP\tLAST RUN\tNEXT RUN\tNODE\tPHASE\n")
		for _, r := range m.Rotations {
			sched := string(r.Spec.Schedule)
			if r.Spec.Suspend {
				sched += " (suspended)"
			}
			next := "-"
			if r.Status.NextRun != nil {
				next = r.Status.NextRun.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, sched, r.Spec.OverlapWindow.Duration,
				age(m.Now, r.Status.LastRun), next, dash(r.Status.CurrentNode), dash(string(r.Status.Phase)))
		}
	}
	if len(m.Problems) > 0 {
		fmt.Fprintf(tw, "\nPROBLEMS\n")
		for _, p := range m.Problems {
			fmt.Fprintf(tw, "%s\n", p)
		}
	}
	return tw.Flush()
}

// peers is "up/wanted" and names the daemon's own total when it
// disagrees with what the controller wants.
func peers(n Node) string {
	if n.VpbluNode == nil && !n.Want.Member {
		return "-"
	}
	st := n.Status()
	s := fmt.Sprintf("%d/%d", st.PeersUp, len(n.WantPeers))
	if int(st.PeersTotal) != len(n.WantPeers) {
		s += fmt.Sprintf(" (daemon has %d)", st.PeersTotal)
	}
	return s
}

// Note says why a node is outside the mesh or limited, e.g. "isolated",
// "no key reported", "drained"; empty when nothing is unusual.
func (n Node) Note() string {
	var notes []string
	switch {
	case !n.HasNode:
		notes = append(notes, "no Kubernetes Node")
	case !n.Want.Selected:
		notes = append(notes, "no TunnelPolicy selects it")
	case n.Want.Isolated:
		notes = append(notes, "isolated")
	case n.Want.QuarantinePending:
		notes = append(notes, "isolation lifted, awaiting key rotation")
	case n.VpbluNode == nil || n.VpbluNode.Status.PublicKey == "":
		notes = append(notes, "no key reported")
	}
	if n.Want.Drained {
		notes = append(notes, "drained")
	}
	if c := n.Condition(v1alpha1.ConditionCapacity); c != nil && c.Status == metav1.ConditionFalse {
		notes = append(notes, "maps full: "+c.Message)
	}
	return strings.Join(notes, ", ")
}

func condStatus(n Node, t string) string {
	c := n.Condition(t)
	if c == nil {
		return "-"
	}
	return string(c.Status)
}

func age(now time.Time, t *metav1.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return duration.HumanDuration(now.Sub(t.Time)) + " ago"
}

func num(v int64) string {
	if v == 0 {
		return ""
	}
	return fmt.Sprint(v)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
