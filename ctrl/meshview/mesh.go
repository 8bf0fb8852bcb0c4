package meshview

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/ctrl/reconcile"
)

// Mesh is one read of the cluster: what the controller wants (from the
// same inputs it reads) and what every daemon last reported.
type Mesh struct {
	// Now is when the cluster was read; ages are relative to it.
	Now time.Time
	// Nodes are sorted by name: every Kubernetes Node and every VpbluNode.
	Nodes []Node
	// Tunnels are the node pairs the controller wants a tunnel between,
	// sorted, each with A < B.
	Tunnels []Tunnel
	// Policies are the Tunnel, Route and Block policies, sorted by kind
	// then name.
	Policies []Policy
	// Rotations are the RotationPolicies, sorted by name.
	Rotations []v1alpha1.RotationPolicy
	// Problems are the conflicts and invalid policies core/desired found.
	Problems []string
}

// Node is one node: the controller's view beside the daemon's report.
type Node struct {
	Name string
	// HasNode: a Kubernetes Node exists. A VpbluNode without one is left
	// over (the controller deletes it).
	HasNode bool
	// VpbluNode is nil until the controller created it.
	VpbluNode *v1alpha1.VpbluNode
	// Want is what core/desired says about the node.
	Want desired.NodeStatus
	// WantPeers names the nodes it should have a tunnel to, sorted.
	WantPeers []string
}

// Status is the node's reported status (zero without a VpbluNode).
func (n Node) Status() v1alpha1.VpbluNodeStatus {
	if n.VpbluNode == nil {
		return v1alpha1.VpbluNodeStatus{}
	}
	return n.VpbluNode.Status
}

// Condition returns the node's condition t, or nil.
func (n Node) Condition(t string) *metav1.Condition {
	if n.VpbluNode == nil {
		return nil
	}
	return meta.FindStatusCondition(n.VpbluNode.Status.Conditions, t)
}

// Tunnel is a node pair that should have a WireGuard tunnel.
type Tunnel struct{ A, B string }

// Policy is a Tunnel, Route or Block policy with its status.
type Policy struct {
	Kind, Name   string
	Nodes        int32
	NodesApplied int32
	Generation   int64
	Observed     int64
	Conditions   []metav1.Condition
}

// Load reads the cluster through r with one List per kind (no per-node
// requests, so it stays cheap on large clusters).
func Load(ctx context.Context, r client.Reader, now time.Time) (*Mesh, error) {
	var (
		nodes corev1.NodeList
		vns   v1alpha1.VpbluNodeList
		rots  v1alpha1.RotationPolicyList
	)
	if err := r.List(ctx, &nodes); err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	if err := r.List(ctx, &vns); err != nil {
		return nil, fmt.Errorf("list vpblunodes: %w", err)
	}
	if err := r.List(ctx, &rots); err != nil {
		return nil, fmt.Errorf("list rotationpolicies: %w", err)
	}
	byName := make(map[string]*v1alpha1.VpbluNode, len(vns.Items))
	for i := range vns.Items {
		byName[vns.Items[i].Name] = &vns.Items[i]
	}
	// Nodes without pod CIDRs get their pod IPs from their pods, as in the
	// controller; one List serves them all.
	pods, err := podsByNode(ctx, r, nodes.Items)
	if err != nil {
		return nil, err
	}

	var snap desired.Snapshot
	m := &Mesh{Now: now}
	seen := map[string]bool{}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		if n.DeletionTimestamp != nil {
			continue
		}
		seen[n.Name] = true
		snap.Nodes = append(snap.Nodes, reconcile.NodeInput(reconcile.NodeSources{Node: n, VpbluNode: byName[n.Name], Pods: pods[n.Name]}))
		m.Nodes = append(m.Nodes, Node{Name: n.Name, HasNode: true, VpbluNode: byName[n.Name]})
	}
	for name, vn := range byName {
		if !seen[name] {
			m.Nodes = append(m.Nodes, Node{Name: name, VpbluNode: vn})
		}
	}
	slices.SortFunc(m.Nodes, func(a, b Node) int { return cmp.Compare(a.Name, b.Name) })

	pol, _, err := reconcile.ListPolicies(ctx, r)
	if err != nil {
		return nil, err
	}
	snap.Policies = pol
	res := desired.Compute(snap)
	for _, e := range res.Errors {
		m.Problems = append(m.Problems, e.Error())
	}
	for i := range m.Nodes {
		n := &m.Nodes[i]
		n.Want = res.Nodes[n.Name]
		for p := range res.States[n.Name].Peers.Names() {
			n.WantPeers = append(n.WantPeers, p)
			if n.Name < p {
				m.Tunnels = append(m.Tunnels, Tunnel{A: n.Name, B: p})
			}
		}
	}
	slices.SortFunc(m.Tunnels, func(a, b Tunnel) int { return cmp.Or(cmp.Compare(a.A, b.A), cmp.Compare(a.B, b.B)) })

	m.Policies = policies(pol)
	m.Rotations = rots.Items
	slices.SortFunc(m.Rotations, func(a, b v1alpha1.RotationPolicy) int { return cmp.Compare(a.Name, b.Name) })
	return m, nil
}

func podsByNode(ctx context.Context, r client.Reader, nodes []corev1.Node) (map[string][]corev1.Pod, error) {
	need := false
	for i := range nodes {
		if len(nodes[i].Spec.PodCIDRs) == 0 && nodes[i].Spec.PodCIDR == "" {
			need = true
			break
		}
	}
	if !need {
		return nil, nil
	}
	var pods corev1.PodList
	if err := r.List(ctx, &pods); err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	out := map[string][]corev1.Pod{}
	for _, p := range pods.Items {
		if p.Spec.NodeName != "" {
			out[p.Spec.NodeName] = append(out[p.Spec.NodeName], p)
		}
	}
	return out, nil
}

// policies describes the policies core/desired was given (the same ones
// the controller reads: not those being deleted).
func policies(pol desired.Policies) []Policy {
	var out []Policy
	add := func(kind, name string, gen int64, s v1alpha1.PolicyStatus) {
		out = append(out, Policy{Kind: kind, Name: name, Nodes: s.Nodes, NodesApplied: s.NodesApplied, Generation: gen, Observed: s.ObservedGeneration, Conditions: s.Conditions})
	}
	for _, p := range pol.Tunnel {
		add("TunnelPolicy", p.Name, p.Generation, p.Status)
	}
	for _, p := range pol.Route {
		add("RoutePolicy", p.Name, p.Generation, p.Status.PolicyStatus)
	}
	for _, p := range pol.Block {
		add("BlockPolicy", p.Name, p.Generation, p.Status)
	}
	slices.SortFunc(out, func(a, b Policy) int { return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name)) })
	return out
}
