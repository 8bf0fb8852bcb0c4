package clustertest

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lumbrjx/vpblu/ctrl/auth"
	"github.com/lumbrjx/vpblu/ctrl/auth/authtest"
	"github.com/lumbrjx/vpblu/ctrl/certs"
	"github.com/lumbrjx/vpblu/ctrl/streamserver/agenttest"
	"github.com/lumbrjx/vpblu/tools/testenv"
)

// Namespace is where the controller and the agents live in test clusters.
const Namespace = "vpblu-system"

// AgentServiceAccount is the agents' ServiceAccount.
const AgentServiceAccount = "vpblu-agent"

// Cluster is a real API server prepared for vpblu.
type Cluster struct {
	Env *testenv.Env
	// Key signs the server's tokens (so tests can forge expired ones).
	Key    *authtest.SigningKey
	Minter *authtest.Minter
	cs     kubernetes.Interface
}

// Start runs an API server for the test, with the agents' namespace and
// ServiceAccount, and stops it when the test ends.
func Start(t testing.TB) *Cluster {
	t.Helper()
	env, key := authtest.StartAPIServer(t)
	c := &Cluster{Env: env, Key: key}
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = -1, 0
	var err error
	c.cs, err = kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Minter, err = authtest.NewMinter(context.Background(), env.Config, Namespace, AgentServiceAccount)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// NodeName is the name of test node i.
func NodeName(i int) string { return fmt.Sprintf("node-%04d", i) }

// NodeIP is test node i's InternalIP (198.18.0.0/15).
func NodeIP(i int) string { return fmt.Sprintf("198.%d.%d.%d", 18+(i>>16)&1, (i>>8)&255, i&255) }

// PodCIDR is test node i's pod CIDR (a /24 of 100.64.0.0/10).
func PodCIDR(i int) string { return fmt.Sprintf("100.%d.%d.0/24", 64+(i>>8)&63, i&255) }

// Node returns test node i with its address and pod CIDR.
func Node(i int, labels map[string]string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: NodeName(i), Labels: labels},
		Spec:       corev1.NodeSpec{PodCIDR: PodCIDR(i), PodCIDRs: []string{PodCIDR(i)}},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: NodeIP(i)},
			{Type: corev1.NodeHostName, Address: NodeName(i)},
		}},
	}
}

// PublicKey is a node's test WireGuard public key: fixed per name, never
// zero.
func PublicKey(node string) []byte {
	k := sha256.Sum256([]byte("vpblu test key " + node))
	return k[:]
}

// CreateNodes creates test nodes with parallel workers. The API server
// drops a Node's status on create, so it is written after.
func (c *Cluster) CreateNodes(ctx context.Context, nodes []*corev1.Node, parallel int) error {
	return each(nodes, parallel, func(n *corev1.Node) error {
		st := n.Status
		created, err := c.cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create node %s: %w", n.Name, err)
		}
		if len(created.Status.Addresses) == 0 && len(st.Addresses) > 0 {
			created.Status = st
			if _, err := c.cs.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("node %s status: %w", n.Name, err)
			}
		}
		return nil
	})
}

// DeleteNode deletes a node.
func (c *Cluster) DeleteNode(ctx context.Context, name string) error {
	err := c.cs.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil {
		return fmt.Errorf("delete node %s: %w", name, err)
	}
	return nil
}

// Tokens creates the agent pods of nodes and returns a real token for
// each, audience vpblu.io/agent.
func (c *Cluster) Tokens(ctx context.Context, nodes []string, parallel int) (map[string]string, error) {
	return c.Minter.Tokens(ctx, nodes, auth.Audience, parallel)
}

// CA waits for the CA bundle the controller publishes and returns it as
// a pool, as a daemon that mounts the ConfigMap would.
func (c *Cluster) CA(ctx context.Context) (*x509.CertPool, error) {
	for {
		cm := &corev1.ConfigMap{}
		err := c.Env.Client.Get(ctx, client.ObjectKey{Namespace: Namespace, Name: certs.DefaultName}, cm)
		if err == nil {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM([]byte(cm.Data[certs.SecretCertKey])) {
				return nil, errors.New("CA bundle holds no certificate")
			}
			return pool, nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("CA bundle: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// DaemonOptions returns fake daemon options for node: its key, its token,
// the controller addresses and the CA.
func DaemonOptions(node, token string, ca *x509.CertPool, addrs ...string) agenttest.Options {
	return agenttest.Options{
		Node: node, Addrs: addrs, RootCAs: ca,
		Token:         func() string { return token },
		PublicKey:     PublicKey(node),
		RetryInterval: 50 * time.Millisecond,
	}
}

func each[T any](items []T, parallel int, fn func(T) error) error {
	if parallel < 1 {
		parallel = 1
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		next = make(chan T)
	)
	for range parallel {
		wg.Go(func() {
			for it := range next {
				if err := fn(it); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, it := range items {
		next <- it
	}
	close(next)
	wg.Wait()
	return errors.Join(errs...)
}
