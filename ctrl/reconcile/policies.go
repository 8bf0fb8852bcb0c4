package reconcile

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/core/desired"
)

// PolicyVersion identifies one version of a policy's spec.
type PolicyVersion struct {
	UID        types.UID
	Generation int64
}

// ListPolicies reads every policy from r and returns them with their
// versions.
func ListPolicies(ctx context.Context, r client.Reader) (desired.Policies, map[desired.Ref]PolicyVersion, error) {
	var (
		tl  v1alpha1.TunnelPolicyList
		rl  v1alpha1.RoutePolicyList
		bl  v1alpha1.BlockPolicyList
		pol desired.Policies
	)
	if err := r.List(ctx, &tl); err != nil {
		return pol, nil, fmt.Errorf("list tunnel policies: %w", err)
	}
	if err := r.List(ctx, &rl); err != nil {
		return pol, nil, fmt.Errorf("list route policies: %w", err)
	}
	if err := r.List(ctx, &bl); err != nil {
		return pol, nil, fmt.Errorf("list block policies: %w", err)
	}
	gens := make(map[desired.Ref]PolicyVersion, len(tl.Items)+len(rl.Items)+len(bl.Items))
	for _, p := range tl.Items {
		if p.DeletionTimestamp == nil {
			pol.Tunnel = append(pol.Tunnel, p)
			gens[desired.Ref{Kind: desired.KindTunnelPolicy, Name: p.Name}] = PolicyVersion{p.UID, p.Generation}
		}
	}
	for _, p := range rl.Items {
		if p.DeletionTimestamp == nil {
			pol.Route = append(pol.Route, p)
			gens[desired.Ref{Kind: desired.KindRoutePolicy, Name: p.Name}] = PolicyVersion{p.UID, p.Generation}
		}
	}
	for _, p := range bl.Items {
		if p.DeletionTimestamp == nil {
			pol.Block = append(pol.Block, p)
			gens[desired.Ref{Kind: desired.KindBlockPolicy, Name: p.Name}] = PolicyVersion{p.UID, p.Generation}
		}
	}
	return pol, gens, nil
}
