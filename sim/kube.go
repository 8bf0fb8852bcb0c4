package sim

import (
	"context"
	"fmt"
	"net/netip"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

const (
	// SystemNamespace is where the controller and the agents' pods live.
	SystemNamespace = "vpblu-system"
	// AgentServiceAccount is the agents' ServiceAccount; it has no RBAC.
	AgentServiceAccount = "vpblu-agent"
	// AgentAudience is the audience of the agents' projected tokens.
	AgentAudience = "vpblu.io/agent"
	// PodNamespace holds the simulated workload pods.
	PodNamespace = "default"
)

// registerNode creates the Kubernetes objects of a simulated node: the
// Node (pod CIDRs, internal IPs, Ready) and the Pods of its workloads, as
// the kubelet and the base CNI would report them.
func registerNode(ctx context.Context, cs kubernetes.Interface, node *Node) error {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: node.Name, Labels: map[string]string{"kubernetes.io/hostname": node.Name, "vpblu.io/sim": "true"}},
		Spec:       corev1.NodeSpec{PodCIDR: node.PodV4.String(), PodCIDRs: []string{node.PodV4.String(), node.PodV6.String()}},
	}
	created, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		created, err = cs.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("create node %s: %w", node.Name, err)
	}
	created.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: node.IPv4.String()},
		{Type: corev1.NodeInternalIP, Address: node.IPv6.String()},
		{Type: corev1.NodeHostName, Address: node.Name},
	}
	created.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "Simulated", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("node %s status: %w", node.Name, err)
	}
	for _, pod := range node.Pods {
		if err := registerPod(ctx, cs, PodNamespace, pod.Name, node.Name, "", pod.IPv4, pod.IPv6); err != nil {
			return err
		}
	}
	return nil
}

func registerPod(ctx context.Context, cs kubernetes.Interface, ns, name, nodeName, serviceAccount string, ips ...netip.Addr) error {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"vpblu.io/sim": "true"}},
		Spec: corev1.PodSpec{
			NodeName:           nodeName,
			ServiceAccountName: serviceAccount,
			Containers:         []corev1.Container{{Name: "main", Image: "simulated"}},
		},
	}
	created, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create pod %s/%s: %w", ns, name, err)
	}
	created.Status.Phase = corev1.PodRunning
	for _, ip := range ips {
		created.Status.PodIPs = append(created.Status.PodIPs, corev1.PodIP{IP: ip.String()})
	}
	if len(ips) > 0 {
		created.Status.PodIP = ips[0].String()
	}
	if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("pod %s/%s status: %w", ns, name, err)
	}
	return nil
}

// ensureSystem creates the namespace and the agents' ServiceAccount.
func ensureSystem(ctx context.Context, cs kubernetes.Interface) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: SystemNamespace}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace: %w", err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: AgentServiceAccount, Namespace: SystemNamespace}}
	if _, err := cs.CoreV1().ServiceAccounts(SystemNamespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create service account: %w", err)
	}
	return nil
}

// AgentPodName is the name of the (never running) Pod object an agent's
// token is bound to, as the DaemonSet's pod would be.
func AgentPodName(node string) string { return "vpblu-agent-" + node }

// agentToken returns a projected ServiceAccount token for node's agent,
// bound to its agent Pod (created if missing), as the kubelet would mount
// it into the DaemonSet's pod.
func agentToken(ctx context.Context, cs kubernetes.Interface, node string, lifetimeSeconds int64) (string, error) {
	name := AgentPodName(node)
	if err := registerPod(ctx, cs, SystemNamespace, name, node, AgentServiceAccount); err != nil {
		return "", err
	}
	pod, err := cs.CoreV1().Pods(SystemNamespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("agent pod of %s: %w", node, err)
	}
	tr := &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{
		Audiences:         []string{AgentAudience},
		ExpirationSeconds: ptr.To(lifetimeSeconds),
		BoundObjectRef:    &authv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	out, err := cs.CoreV1().ServiceAccounts(SystemNamespace).CreateToken(ctx, AgentServiceAccount, tr, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for agent of %s: %w", node, err)
	}
	return out.Status.Token, nil
}
