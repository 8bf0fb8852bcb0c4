package clustertest

import (
	"context"
	"encoding/base64"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
)

// SeedVpbluNodes creates the VpbluNodes of existing nodes with the status a
// controller writes once their daemons reported (public key, key
// generation 1): the steady state a restarted or new leader finds.
func (c *Cluster) SeedVpbluNodes(ctx context.Context, names []string, parallel int) error {
	return each(names, parallel, func(name string) error {
		node := &corev1.Node{}
		if err := c.Env.Client.Get(ctx, client.ObjectKey{Name: name}, node); err != nil {
			return fmt.Errorf("get node %s: %w", name, err)
		}
		vn := &v1alpha1.VpbluNode{ObjectMeta: metav1.ObjectMeta{
			Name:            name,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: name, UID: node.UID}},
		}}
		if err := c.Env.Client.Create(ctx, vn); err != nil {
			return fmt.Errorf("create vpblunode %s: %w", name, err)
		}
		vn.Status = v1alpha1.VpbluNodeStatus{PublicKey: base64.StdEncoding.EncodeToString(PublicKey(name)), KeyGeneration: 1}
		if err := c.Env.Client.Status().Update(ctx, vn); err != nil {
			return fmt.Errorf("vpblunode %s status: %w", name, err)
		}
		return nil
	})
}
