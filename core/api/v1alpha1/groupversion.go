package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the group and version of every vpblu resource.
var GroupVersion = schema.GroupVersion{Group: "vpblu.io", Version: "v1alpha1"}

var (
	schemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme registers the vpblu types with a scheme.
	AddToScheme = schemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&VpbluNode{}, &VpbluNodeList{},
		&TunnelPolicy{}, &TunnelPolicyList{},
		&RoutePolicy{}, &RoutePolicyList{},
		&BlockPolicy{}, &BlockPolicyList{},
		&RotationPolicy{}, &RotationPolicyList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
