package authtest

import (
	"context"
	"errors"
	"fmt"
	"sync"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Minter creates agent pods and their tokens in one namespace.
type Minter struct {
	cs             kubernetes.Interface
	namespace      string
	serviceAccount string
}

// NewMinter creates namespace and serviceAccount (if absent) and returns a
// Minter for them.
func NewMinter(ctx context.Context, cfg *rest.Config, namespace, serviceAccount string) (*Minter, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = -1, 0
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("clientset: %w", err)
	}
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create namespace: %w", err)
	}
	_, err = cs.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: serviceAccount}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create service account: %w", err)
	}
	return &Minter{cs: cs, namespace: namespace, serviceAccount: serviceAccount}, nil
}

// PodName is the name of the agent pod bound to node.
func PodName(node string) string { return "agent-" + node }

// Pod creates (if absent) the agent pod bound to node and returns it.
func (m *Minter) Pod(ctx context.Context, node string) (*corev1.Pod, error) {
	no := false
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: PodName(node), Namespace: m.namespace, Labels: map[string]string{"app": "vpblu-agent"}},
		Spec: corev1.PodSpec{
			NodeName:                     node,
			ServiceAccountName:           m.serviceAccount,
			AutomountServiceAccountToken: &no,
			HostNetwork:                  true,
			Containers:                   []corev1.Container{{Name: "agent", Image: "vpblu-agent:test"}},
		},
	}
	got, err := m.cs.CoreV1().Pods(m.namespace).Create(ctx, pod, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		got, err = m.cs.CoreV1().Pods(m.namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	}
	if err != nil {
		return nil, fmt.Errorf("agent pod for %s: %w", node, err)
	}
	return got, nil
}

// DeletePod deletes node's agent pod: tokens bound to it stop working.
func (m *Minter) DeletePod(ctx context.Context, node string) error {
	zero := int64(0)
	err := m.cs.CoreV1().Pods(m.namespace).Delete(ctx, PodName(node), metav1.DeleteOptions{GracePeriodSeconds: &zero})
	if err != nil {
		return fmt.Errorf("delete agent pod for %s: %w", node, err)
	}
	return nil
}

// Token returns a token for the agent pod on node (created if absent) with
// the given audience, valid for the API server's minimum of 10 minutes.
func (m *Minter) Token(ctx context.Context, node, audience string) (string, error) {
	pod, err := m.Pod(ctx, node)
	if err != nil {
		return "", err
	}
	return m.TokenFor(ctx, pod, audience)
}

// TokenFor requests a token bound to pod.
func (m *Minter) TokenFor(ctx context.Context, pod *corev1.Pod, audience string) (string, error) {
	exp := int64(600)
	tr, err := m.cs.CoreV1().ServiceAccounts(m.namespace).CreateToken(ctx, pod.Spec.ServiceAccountName, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{
			Audiences:         []string{audience},
			ExpirationSeconds: &exp,
			BoundObjectRef:    &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for %s: %w", pod.Name, err)
	}
	return tr.Status.Token, nil
}

// Tokens mints tokens for many nodes with parallel workers.
func (m *Minter) Tokens(ctx context.Context, nodes []string, audience string, parallel int) (map[string]string, error) {
	if parallel < 1 {
		parallel = 1
	}
	var (
		mu   sync.Mutex
		out  = make(map[string]string, len(nodes))
		errs []error
		wg   sync.WaitGroup
		next = make(chan string)
	)
	for range parallel {
		wg.Go(func() {
			for node := range next {
				tok, err := m.Token(ctx, node, audience)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					out[node] = tok
				}
				mu.Unlock()
			}
		})
	}
	for _, n := range nodes {
		next <- n
	}
	close(next)
	wg.Wait()
	return out, errors.Join(errs...)
}
