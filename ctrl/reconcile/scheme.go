package reconcile

import (
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
)

// Scheme returns the types the controller's inputs are read as: core
// Kubernetes and vpblu. The controller and the tools that recompute its
// view of the mesh share it.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	return s
}
