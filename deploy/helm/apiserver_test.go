package helm_test

import (
	"context"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lumbrjx/vpblu/deploy/helm"
	"github.com/lumbrjx/vpblu/tools/testenv"
)

// Every object of every render case is created on a real API server (the
// CRDs are installed there from deploy/crds, which the chart's copy
// equals): the server's validation and admission, not ours, judge the
// Deployment, the DaemonSet, the RBAC and the policies. With the default
// install in place, the server's RBAC authorizer then answers what the
// controller's and the agents' ServiceAccounts may do.
func TestChartInstallsOnAPIServer(t *testing.T) {
	env := startAPIServer(t)
	for _, tc := range renderCases {
		t.Run(tc.name, func(t *testing.T) {
			install(t, env, render(t, tc.values))
			if tc.name == "defaults" && !t.Failed() {
				checkAccess(t, env)
			}
		})
	}
}

// install creates every rendered object on env, as `helm install` would,
// and deletes them when the test ends. Nothing the chart renders has
// finalizers, so deletion is immediate and cases can install one after
// another.
func install(t *testing.T, env *testenv.Env, r rendered) {
	t.Helper()
	var created []client.Object
	t.Cleanup(func() {
		for i := len(created) - 1; i >= 0; i-- {
			if err := env.Client.Delete(context.Background(), created[i]); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("deleting %s %s: %v", created[i].GetObjectKind().GroupVersionKind().Kind, created[i].GetName(), err)
			}
		}
	})
	for _, obj := range r.objs {
		obj := obj.DeepCopyObject().(client.Object)
		kind := obj.GetObjectKind().GroupVersionKind().Kind
		if err := env.Client.Create(t.Context(), obj, client.FieldValidation(metav1.FieldValidationStrict)); err != nil {
			t.Errorf("API server refused %s %s: %v", kind, obj.GetName(), err)
			continue
		}
		created = append(created, obj)
	}
}

// startAPIServer starts a real API server with the release namespace.
func startAPIServer(t *testing.T) *testenv.Env {
	t.Helper()
	env := testenv.Start(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: helm.DefaultNamespace}}
	if err := env.Client.Create(t.Context(), ns); err != nil {
		t.Fatal(err)
	}
	return env
}

// access is one request a ServiceAccount might make.
type access struct {
	verb, group, resource, subresource, namespace, name string
}

func (a access) String() string {
	s := a.verb + " " + a.resource
	if a.group != "" {
		s += "." + a.group
	}
	if a.subresource != "" {
		s += "/" + a.subresource
	}
	if a.name != "" {
		s += " " + a.name
	}
	if a.namespace != "" {
		s += " in " + a.namespace
	}
	return s
}

// checkAccess asks the API server's authorizer what the installed
// ServiceAccounts may do.
func checkAccess(t *testing.T, env *testenv.Env) {
	const ns = helm.DefaultNamespace
	controllerNeeds := []access{
		// informers
		{verb: "list", resource: "nodes"}, {verb: "watch", resource: "nodes"}, {verb: "get", resource: "nodes"},
		{verb: "list", resource: "pods"}, {verb: "watch", resource: "pods"},
		{verb: "list", group: "vpblu.io", resource: "vpblunodes"}, {verb: "watch", group: "vpblu.io", resource: "vpblunodes"},
		{verb: "list", group: "vpblu.io", resource: "tunnelpolicies"}, {verb: "watch", group: "vpblu.io", resource: "tunnelpolicies"},
		{verb: "list", group: "vpblu.io", resource: "routepolicies"}, {verb: "watch", group: "vpblu.io", resource: "routepolicies"},
		{verb: "list", group: "vpblu.io", resource: "blockpolicies"}, {verb: "watch", group: "vpblu.io", resource: "blockpolicies"},
		{verb: "list", group: "vpblu.io", resource: "rotationpolicies"}, {verb: "watch", group: "vpblu.io", resource: "rotationpolicies"},
		// VpbluNode lifecycle and status
		{verb: "get", group: "vpblu.io", resource: "vpblunodes", name: "n1"},
		{verb: "create", group: "vpblu.io", resource: "vpblunodes"},
		{verb: "update", group: "vpblu.io", resource: "vpblunodes", name: "n1"},
		{verb: "delete", group: "vpblu.io", resource: "vpblunodes", name: "n1"},
		{verb: "patch", group: "vpblu.io", resource: "vpblunodes", subresource: "status", name: "n1"},
		// policy status
		{verb: "patch", group: "vpblu.io", resource: "tunnelpolicies", subresource: "status", name: "p"},
		{verb: "patch", group: "vpblu.io", resource: "routepolicies", subresource: "status", name: "p"},
		{verb: "patch", group: "vpblu.io", resource: "blockpolicies", subresource: "status", name: "p"},
		{verb: "patch", group: "vpblu.io", resource: "rotationpolicies", subresource: "status", name: "p"},
		// daemon authentication
		{verb: "create", group: "authentication.k8s.io", resource: "tokenreviews"},
		// leader election
		{verb: "get", group: "coordination.k8s.io", resource: "leases", namespace: ns, name: controllerName},
		{verb: "update", group: "coordination.k8s.io", resource: "leases", namespace: ns, name: controllerName},
		{verb: "create", group: "coordination.k8s.io", resource: "leases", namespace: ns},
		// the CA and its bundle
		{verb: "get", resource: "secrets", namespace: ns, name: "vpblu-ca"},
		{verb: "create", resource: "secrets", namespace: ns},
		{verb: "get", resource: "configmaps", namespace: ns, name: "vpblu-ca"},
		{verb: "update", resource: "configmaps", namespace: ns, name: "vpblu-ca"},
		{verb: "create", resource: "configmaps", namespace: ns},
		// Events about cluster-scoped objects
		{verb: "create", group: "events.k8s.io", resource: "events", namespace: "default"},
		{verb: "patch", group: "events.k8s.io", resource: "events", namespace: "default", name: "e"},
	}
	controllerMustNot := []access{
		{verb: "list", resource: "secrets", namespace: ns},
		{verb: "watch", resource: "secrets", namespace: ns},
		{verb: "get", resource: "secrets", namespace: ns, name: "other"},
		{verb: "get", resource: "secrets", namespace: "kube-system", name: "vpblu-ca"},
		{verb: "update", resource: "secrets", namespace: ns, name: "vpblu-ca"},
		{verb: "delete", resource: "configmaps", namespace: ns, name: "vpblu-ca"},
		{verb: "update", group: "coordination.k8s.io", resource: "leases", namespace: ns, name: "other"},
		{verb: "update", group: "coordination.k8s.io", resource: "leases", namespace: "kube-system", name: controllerName},
		{verb: "create", resource: "pods", namespace: ns},
		{verb: "delete", resource: "pods", namespace: ns, name: "p"},
		{verb: "update", resource: "nodes", name: "n1"},
		{verb: "patch", resource: "nodes", subresource: "status", name: "n1"},
		{verb: "create", resource: "serviceaccounts", subresource: "token", namespace: ns, name: agentName},
		{verb: "create", group: "vpblu.io", resource: "tunnelpolicies"},
		{verb: "delete", group: "vpblu.io", resource: "blockpolicies", name: "p"},
		{verb: "deletecollection", group: "vpblu.io", resource: "vpblunodes"},
		{verb: "create", group: "events.k8s.io", resource: "events", namespace: "kube-system"},
		{verb: "impersonate", resource: "serviceaccounts", namespace: ns, name: agentName},
	}
	agentMustNot := []access{
		{verb: "get", group: "vpblu.io", resource: "vpblunodes", name: "n1"},
		{verb: "list", group: "vpblu.io", resource: "tunnelpolicies"},
		{verb: "list", resource: "nodes"},
		{verb: "list", resource: "pods"},
		{verb: "get", resource: "configmaps", namespace: ns, name: "vpblu-ca"},
		{verb: "get", resource: "secrets", namespace: ns, name: "vpblu-ca"},
		{verb: "create", group: "authentication.k8s.io", resource: "tokenreviews"},
		{verb: "create", resource: "serviceaccounts", subresource: "token", namespace: ns, name: agentName},
		{verb: "create", group: "events.k8s.io", resource: "events", namespace: "default"},
	}

	for _, tc := range []struct {
		account string
		list    []access
		allowed bool
	}{
		{controllerName, controllerNeeds, true},
		{controllerName, controllerMustNot, false},
		{agentName, agentMustNot, false},
	} {
		for _, a := range tc.list {
			if got := allowed(t, env, tc.account, a); got != tc.allowed {
				t.Errorf("%s may %s: %v, want %v", tc.account, a, got, tc.allowed)
			}
		}
	}
}

// allowed asks the API server whether ServiceAccount account in the
// release namespace may make request a.
func allowed(t *testing.T, env *testenv.Env, account string, a access) bool {
	t.Helper()
	ns := helm.DefaultNamespace
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   "system:serviceaccount:" + ns + ":" + account,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Verb: a.verb, Group: a.group, Resource: a.resource, Subresource: a.subresource,
			Namespace: a.namespace, Name: a.name,
		},
	}}
	if err := env.Client.Create(t.Context(), sar); err != nil {
		t.Fatalf("SubjectAccessReview %s: %v", a, err)
	}
	return sar.Status.Allowed
}
