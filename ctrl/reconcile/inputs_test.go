package reconcile

import (
	"encoding/base64"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/core/desired"
)

func key(b byte) desired.Key {
	var k desired.Key
	for i := range k {
		k[i] = b
	}
	return k
}

func node(mod func(*corev1.Node)) *corev1.Node {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"zone": "a"}},
		Spec:       corev1.NodeSpec{PodCIDRs: []string{"100.64.1.0/24", "2001:db8:1::/64"}},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeHostName, Address: "n1"},
			{Type: corev1.NodeInternalIP, Address: "198.18.0.1"},
			{Type: corev1.NodeExternalIP, Address: "203.0.113.1"},
			{Type: corev1.NodeInternalIP, Address: "2001:db8::1"},
		}},
	}
	if mod != nil {
		mod(n)
	}
	return n
}

func pod(name string, mod func(*corev1.Pod)) corev1.Pod {
	p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	if mod != nil {
		mod(&p)
	}
	return p
}

func TestNodeInput(t *testing.T) {
	port := int32(4000)
	k1, k2 := key(1), key(2)
	base := desired.Node{
		Name: "n1", Labels: map[string]string{"zone": "a"},
		InternalIPs: []netip.Addr{netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("2001:db8::1")},
		PodCIDRs:    []netip.Prefix{netip.MustParsePrefix("100.64.1.0/24"), netip.MustParsePrefix("2001:db8:1::/64")},
	}
	with := func(mod func(*desired.Node)) desired.Node {
		n := base
		mod(&n)
		return n
	}
	for _, tc := range []struct {
		name string
		src  NodeSources
		want desired.Node
	}{
		{"internal IPs and pod CIDRs come from the Node", NodeSources{Node: node(nil)}, base},
		{"the legacy podCIDR field is read when podCIDRs is empty",
			NodeSources{Node: node(func(n *corev1.Node) { n.Spec.PodCIDRs, n.Spec.PodCIDR = nil, "100.64.7.0/24" })},
			with(func(n *desired.Node) { n.PodCIDRs = []netip.Prefix{netip.MustParsePrefix("100.64.7.0/24")} })},
		{"without pod CIDRs the running non-host pods' IPs are used",
			NodeSources{Node: node(func(n *corev1.Node) { n.Spec.PodCIDRs = nil }), Pods: []corev1.Pod{
				pod("b", func(p *corev1.Pod) { p.Status.PodIPs = []corev1.PodIP{{IP: "100.64.1.9"}, {IP: "2001:db8:1::9"}} }),
				pod("a", func(p *corev1.Pod) { p.Status.PodIPs = []corev1.PodIP{{IP: "100.64.1.3"}} }),
				pod("dup", func(p *corev1.Pod) { p.Status.PodIPs = []corev1.PodIP{{IP: "100.64.1.3"}} }),
				pod("host", func(p *corev1.Pod) { p.Spec.HostNetwork = true; p.Status.PodIPs = []corev1.PodIP{{IP: "198.18.0.1"}} }),
				pod("done", func(p *corev1.Pod) {
					p.Status.Phase = corev1.PodSucceeded
					p.Status.PodIPs = []corev1.PodIP{{IP: "100.64.1.4"}}
				}),
				pod("garbage", func(p *corev1.Pod) { p.Status.PodIPs = []corev1.PodIP{{IP: "not-an-ip"}} }),
			}},
			with(func(n *desired.Node) {
				n.PodCIDRs = nil
				n.PodIPs = []netip.Addr{netip.MustParseAddr("100.64.1.3"), netip.MustParseAddr("100.64.1.9"), netip.MustParseAddr("2001:db8:1::9")}
			})},
		{"pods are ignored when the Node has pod CIDRs",
			NodeSources{Node: node(nil), Pods: []corev1.Pod{pod("a", func(p *corev1.Pod) { p.Status.PodIPs = []corev1.PodIP{{IP: "100.64.1.3"}} })}},
			base},
		{"unparsable addresses and CIDRs are left out",
			NodeSources{Node: node(func(n *corev1.Node) {
				n.Spec.PodCIDRs = []string{"bogus", "100.64.1.0/24"}
				n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "nope"})
			})},
			with(func(n *desired.Node) { n.PodCIDRs = n.PodCIDRs[:1] })},
		{"the VpbluNode gives the endpoint override and the stored key",
			NodeSources{Node: node(nil), VpbluNode: &v1alpha1.VpbluNode{
				Spec: v1alpha1.VpbluNodeSpec{Endpoint: &v1alpha1.Endpoint{Address: "203.0.113.7", Port: &port}},
				Status: v1alpha1.VpbluNodeStatus{PublicKey: base64.StdEncoding.EncodeToString(k1[:]), KeyGeneration: 3,
					QuarantineKeyGeneration: 2},
			}},
			with(func(n *desired.Node) {
				n.Endpoint = &desired.EndpointOverride{Addr: netip.MustParseAddr("203.0.113.7"), Port: 4000}
				n.PublicKey, n.KeyGeneration, n.QuarantineKeyGeneration = k1, 3, 2
			})},
		{"a key the daemon reported wins over the stored one",
			NodeSources{Node: node(nil), Key: &ReportedKey{Key: k2, Generation: 4}, VpbluNode: &v1alpha1.VpbluNode{
				Status: v1alpha1.VpbluNodeStatus{PublicKey: base64.StdEncoding.EncodeToString(k1[:]), KeyGeneration: 3}}},
			with(func(n *desired.Node) { n.PublicKey, n.KeyGeneration = k2, 4 })},
		{"a malformed stored key counts as no key",
			NodeSources{Node: node(nil), VpbluNode: &v1alpha1.VpbluNode{Status: v1alpha1.VpbluNodeStatus{PublicKey: "c2hvcnQ=", KeyGeneration: 3}}},
			base},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := NodeInput(tc.src)
			if d := cmp.Diff(tc.want, got, cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); d != "" {
				t.Errorf("input (-want +got):\n%s", d)
			}
			if !nodeInputEqual(got, tc.want) {
				t.Error("nodeInputEqual says the input differs from what it should equal")
			}
		})
	}
}

func TestNodeInputEqualNoticesEveryField(t *testing.T) {
	base := NodeInput(NodeSources{Node: node(nil), Key: &ReportedKey{Key: key(1), Generation: 1}})
	for _, tc := range []struct {
		name string
		mod  func(*desired.Node)
	}{
		{"labels", func(n *desired.Node) { n.Labels = map[string]string{"zone": "b"} }},
		{"a label added", func(n *desired.Node) { n.Labels = map[string]string{"zone": "a", "x": "y"} }},
		{"internal IPs", func(n *desired.Node) { n.InternalIPs = n.InternalIPs[:1] }},
		{"pod CIDRs", func(n *desired.Node) { n.PodCIDRs = nil }},
		{"pod IPs", func(n *desired.Node) { n.PodIPs = []netip.Addr{netip.MustParseAddr("100.64.1.1")} }},
		{"key", func(n *desired.Node) { n.PublicKey = key(2) }},
		{"key generation", func(n *desired.Node) { n.KeyGeneration = 2 }},
		{"quarantine", func(n *desired.Node) { n.QuarantineKeyGeneration = 1 }},
		{"endpoint", func(n *desired.Node) {
			n.Endpoint = &desired.EndpointOverride{Addr: netip.MustParseAddr("203.0.113.1")}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			changed := NodeInput(NodeSources{Node: node(nil), Key: &ReportedKey{Key: key(1), Generation: 1}})
			tc.mod(&changed)
			if nodeInputEqual(base, changed) {
				t.Error("a changed input compares equal: the engine would miss the change")
			}
		})
	}
}
