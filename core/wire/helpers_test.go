package wire

import "github.com/lumbrjx/vpblu/core/api/v1alpha1"

func tunnelFullMesh() []v1alpha1.TunnelPolicy {
	t := v1alpha1.TunnelPolicy{Spec: v1alpha1.TunnelPolicySpec{Mode: v1alpha1.FullMesh}}
	t.Name = "mesh"
	return []v1alpha1.TunnelPolicy{t}
}
