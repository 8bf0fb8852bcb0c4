package reconcile

import (
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/core/desired"
)

// ReportedKey is the active public key a node's daemon reported over its
// authenticated stream.
type ReportedKey struct {
	Key        desired.Key
	Generation int64
}

// NodeSources are the objects one node's desired-state input is read from.
type NodeSources struct {
	Node *corev1.Node
	// VpbluNode may be nil (not created yet).
	VpbluNode *v1alpha1.VpbluNode
	// Pods are the pods bound to the node; only read when the Node has no
	// pod CIDRs.
	Pods []corev1.Pod
	// Key is what the node's daemon reported, nil if nothing yet. It wins
	// over the VpbluNode status, which may lag behind.
	Key *ReportedKey
}

// NodeInput builds the desired-state input of one node. Malformed values
// (an unparsable address, a bad stored key) are left out; core/desired
// reports what follows from that (a node without a key is not a peer).
func NodeInput(s NodeSources) desired.Node {
	n := desired.Node{Name: s.Node.Name, Labels: s.Node.Labels}
	for _, a := range s.Node.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil {
			n.InternalIPs = append(n.InternalIPs, ip.Unmap())
		}
	}
	cidrs := s.Node.Spec.PodCIDRs
	if len(cidrs) == 0 && s.Node.Spec.PodCIDR != "" {
		cidrs = []string{s.Node.Spec.PodCIDR}
	}
	for _, c := range cidrs {
		if p, err := netip.ParsePrefix(c); err == nil {
			n.PodCIDRs = append(n.PodCIDRs, p)
		}
	}
	if len(n.PodCIDRs) == 0 {
		n.PodIPs = podIPs(s.Pods)
	}
	if vn := s.VpbluNode; vn != nil {
		if ep := vn.Spec.Endpoint; ep != nil {
			if addr, err := netip.ParseAddr(ep.Address); err == nil {
				o := &desired.EndpointOverride{Addr: addr.Unmap()}
				if ep.Port != nil && *ep.Port > 0 && *ep.Port <= 65535 {
					o.Port = uint16(*ep.Port)
				}
				n.Endpoint = o
			}
		}
		if k, err := desired.ParseKey(vn.Status.PublicKey); err == nil {
			n.PublicKey, n.KeyGeneration = k, vn.Status.KeyGeneration
		}
		n.QuarantineKeyGeneration = vn.Status.QuarantineKeyGeneration
	}
	if s.Key != nil && !s.Key.Key.IsZero() {
		n.PublicKey, n.KeyGeneration = s.Key.Key, s.Key.Generation
	}
	return n
}

// podIPs are the IPs of the running, non-hostNetwork pods, sorted and
// without duplicates.
func podIPs(pods []corev1.Pod) []netip.Addr {
	var ips []netip.Addr
	for i := range pods {
		p := &pods[i]
		if p.Spec.HostNetwork || p.DeletionTimestamp != nil ||
			p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		for _, ip := range p.Status.PodIPs {
			if a, err := netip.ParseAddr(ip.IP); err == nil {
				ips = append(ips, a.Unmap())
			}
		}
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	return slices.Compact(ips)
}

// nodeInputEqual reports whether two inputs are the same, so an event that
// changed nothing the engine reads costs no update.
func nodeInputEqual(a, b desired.Node) bool {
	if a.Name != b.Name || a.PublicKey != b.PublicKey || a.KeyGeneration != b.KeyGeneration ||
		a.QuarantineKeyGeneration != b.QuarantineKeyGeneration ||
		!slices.Equal(a.InternalIPs, b.InternalIPs) || !slices.Equal(a.PodCIDRs, b.PodCIDRs) ||
		!slices.Equal(a.PodIPs, b.PodIPs) || len(a.Labels) != len(b.Labels) {
		return false
	}
	if (a.Endpoint == nil) != (b.Endpoint == nil) || (a.Endpoint != nil && *a.Endpoint != *b.Endpoint) {
		return false
	}
	for k, v := range a.Labels {
		if w, ok := b.Labels[k]; !ok || w != v {
			return false
		}
	}
	return true
}
