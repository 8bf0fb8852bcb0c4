package meshview

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
)

// Check is one thing `kubectl vpblu verify` checks.
type Check struct {
	// Subject is what was checked ("mesh", "node/a", "TunnelPolicy/fullmesh").
	Subject string
	// What is the claim, e.g. "daemon connected".
	What string
	OK   bool
	// Detail says what was found when the check failed.
	Detail string
}

// Verify checks that the mesh is what the controller wants and that
// every daemon says it is: no conflicting policies, every policy applied
// on every node it selects, every meshed node's daemon connected and up
// to date, with a handshake on every tunnel it should have.
func Verify(m *Mesh) []Check {
	var out []Check
	add := func(subject, what string, ok bool, format string, args ...any) {
		c := Check{Subject: subject, What: what, OK: ok}
		if !ok {
			c.Detail = fmt.Sprintf(format, args...)
		}
		out = append(out, c)
	}

	add("mesh", "policies are consistent", len(m.Problems) == 0, "%s", strings.Join(m.Problems, "; "))
	selected := 0
	for _, n := range m.Nodes {
		if n.Want.Selected {
			selected++
		}
	}
	add("mesh", "a TunnelPolicy selects the nodes", selected > 0, "no TunnelPolicy selects any of the %d nodes: no tunnels are wanted", len(m.Nodes))

	for _, p := range m.Policies {
		subject := p.Kind + "/" + p.Name
		ready := meta.FindStatusCondition(p.Conditions, v1alpha1.ConditionReady)
		switch {
		case p.Observed != p.Generation:
			add(subject, "applied", false, "the controller has seen generation %d of %d", p.Observed, p.Generation)
		case ready == nil || ready.Status != metav1.ConditionTrue:
			add(subject, "applied", false, "%d of %d nodes applied it; Ready %s", p.NodesApplied, p.Nodes, condString(ready))
		default:
			add(subject, "applied", true, "")
		}
	}

	for _, n := range m.Nodes {
		subject := "node/" + n.Name
		if !n.HasNode {
			add(subject, "has a Kubernetes Node", false, "the VpbluNode is left over from a deleted Node")
			continue
		}
		if !n.Want.Selected {
			continue
		}
		if n.VpbluNode == nil {
			add(subject, "has a VpbluNode", false, "the controller has not created it yet")
			continue
		}
		st := n.VpbluNode.Status
		c := n.Condition(v1alpha1.ConditionConnected)
		add(subject, "daemon connected", c != nil && c.Status == metav1.ConditionTrue, "Connected %s", condString(c))
		if !n.Want.Member {
			why := "it is not a mesh member"
			switch {
			case n.Want.Isolated:
				why = "a BlockPolicy isolates it"
			case n.Want.QuarantinePending:
				why = "it was isolated and has not rotated its key since"
			case st.PublicKey == "":
				why = "its daemon has not reported a key"
			}
			add(subject, "in the mesh", n.Want.Isolated || n.Want.QuarantinePending, "%s", why)
			continue
		}
		r := n.Condition(v1alpha1.ConditionReady)
		add(subject, "state applied", r != nil && r.Status == metav1.ConditionTrue, "Ready %s", condString(r))
		want := int32(len(n.WantPeers))
		add(subject, fmt.Sprintf("%d tunnels with a recent handshake", want), st.PeersTotal == want && st.PeersUp == want,
			"the daemon reports %d of %d peers up, the controller wants %d", st.PeersUp, st.PeersTotal, want)
		if st.RotationPhase == v1alpha1.RotationRollingBack {
			add(subject, "no key rotation rolling back", false, "rolling back generation %d", st.KeyGeneration+1)
		}
	}
	return out
}

// String is "subject: claim", followed by ": detail" when it failed.
func (c Check) String() string {
	s := c.Subject + ": " + c.What
	if c.Detail != "" {
		s += ": " + c.Detail
	}
	return s
}

// Failed counts the failed checks.
func Failed(checks []Check) int {
	n := 0
	for _, c := range checks {
		if !c.OK {
			n++
		}
	}
	return n
}

func condString(c *metav1.Condition) string {
	if c == nil {
		return "not reported"
	}
	s := string(c.Status)
	if c.Reason != "" {
		s += " (" + c.Reason
		if c.Message != "" {
			s += ": " + c.Message
		}
		s += ")"
	}
	return s
}
