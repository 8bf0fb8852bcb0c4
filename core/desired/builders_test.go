package desired

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
)

// node returns test node i: name "a" for 0, "b" for 1, ...; node IP
// 198.18.0.(i+1); pod CIDR 100.64.(i+1).0/24; key generation 1.
func node(i int, opts ...func(*Node)) Node {
	n := Node{
		Name:          string(rune('a' + i)),
		Labels:        map[string]string{"role": "worker"},
		InternalIPs:   []netip.Addr{netip.AddrFrom4([4]byte{198, 18, 0, byte(i + 1)})},
		PodCIDRs:      []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, byte(i + 1), 0}), 24)},
		PublicKey:     key(i),
		KeyGeneration: 1,
	}
	for _, o := range opts {
		o(&n)
	}
	return n
}

func dualStack(n *Node) {
	i := n.Name[0] - 'a' + 1
	n.PodCIDRs = append(n.PodCIDRs, netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, i}), 48))
}

func noKey(n *Node) { n.PublicKey = Key{}; n.KeyGeneration = 0 }

func label(k, v string) func(*Node) { return func(n *Node) { n.Labels[k] = v } }

func podCIDRs(ps ...string) func(*Node) { return func(n *Node) { n.PodCIDRs = pfxs(ps...) } }

func podIPs(as ...string) func(*Node) {
	return func(n *Node) {
		n.PodCIDRs = nil
		for _, a := range as {
			n.PodIPs = append(n.PodIPs, addr(a))
		}
	}
}

func internalIPs(as ...string) func(*Node) {
	return func(n *Node) {
		n.InternalIPs = nil
		for _, a := range as {
			n.InternalIPs = append(n.InternalIPs, addr(a))
		}
	}
}

func endpoint(a string, port uint16) func(*Node) {
	return func(n *Node) { n.Endpoint = &EndpointOverride{Addr: addr(a), Port: port} }
}

func keyGen(gen, quarantine int64) func(*Node) {
	return func(n *Node) { n.KeyGeneration, n.QuarantineKeyGeneration = gen, quarantine }
}

type tpOpt func(*v1alpha1.TunnelPolicy)

func mesh(name string, age int, opts ...tpOpt) v1alpha1.TunnelPolicy {
	t := v1alpha1.TunnelPolicy{ObjectMeta: meta(name, age), Spec: v1alpha1.TunnelPolicySpec{Mode: v1alpha1.FullMesh}}
	for _, o := range opts {
		o(&t)
	}
	return t
}

func explicit(name string, age int, opts ...tpOpt) v1alpha1.TunnelPolicy {
	t := v1alpha1.TunnelPolicy{ObjectMeta: meta(name, age), Spec: v1alpha1.TunnelPolicySpec{Mode: v1alpha1.Explicit}}
	for _, o := range opts {
		o(&t)
	}
	return t
}

func pair(a, b string) tpOpt {
	return func(t *v1alpha1.TunnelPolicy) {
		t.Spec.Pairs = append(t.Spec.Pairs, v1alpha1.NodePair{A: v1alpha1.NodeName(a), B: v1alpha1.NodeName(b)})
	}
}

func group(name, k, v string) tpOpt {
	return func(t *v1alpha1.TunnelPolicy) {
		t.Spec.Groups = append(t.Spec.Groups, v1alpha1.PeerGroup{Name: name, Selector: metav1.LabelSelector{MatchLabels: map[string]string{k: v}}})
	}
}

func selects(k, v string) tpOpt {
	return func(t *v1alpha1.TunnelPolicy) {
		t.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{k: v}}
	}
}

func port(p int32) tpOpt { return func(t *v1alpha1.TunnelPolicy) { t.Spec.ListenPort = p } }

func keepalive(k int32) tpOpt {
	return func(t *v1alpha1.TunnelPolicy) { t.Spec.PersistentKeepaliveSeconds = &k }
}

func strict(s bool) tpOpt { return func(t *v1alpha1.TunnelPolicy) { t.Spec.Strict = &s } }

func route(name string, age int, cidrs []string, via ...string) v1alpha1.RoutePolicy {
	r := v1alpha1.RoutePolicy{ObjectMeta: meta(name, age)}
	for _, c := range cidrs {
		r.Spec.CIDRs = append(r.Spec.CIDRs, v1alpha1.CIDR(c))
	}
	for _, v := range via {
		r.Spec.Via = append(r.Spec.Via, v1alpha1.NodeName(v))
	}
	return r
}

func cidrs(ss ...string) []string { return ss }

type bpOpt func(*v1alpha1.BlockPolicy)

func block(name string, age int, opts ...bpOpt) v1alpha1.BlockPolicy {
	b := v1alpha1.BlockPolicy{ObjectMeta: meta(name, age)}
	for _, o := range opts {
		o(&b)
	}
	return b
}

func rule(from, to []string) bpOpt {
	return func(b *v1alpha1.BlockPolicy) {
		var r v1alpha1.BlockRule
		for _, f := range from {
			r.From = append(r.From, v1alpha1.CIDR(f))
		}
		for _, t := range to {
			r.To = append(r.To, v1alpha1.CIDR(t))
		}
		b.Spec.Rules = append(b.Spec.Rules, r)
	}
}

func isolate(names ...string) bpOpt {
	return func(b *v1alpha1.BlockPolicy) {
		for _, n := range names {
			b.Spec.Isolate = append(b.Spec.Isolate, v1alpha1.NodeName(n))
		}
	}
}

func drain(names ...string) bpOpt {
	return func(b *v1alpha1.BlockPolicy) {
		for _, n := range names {
			b.Spec.Drain = append(b.Spec.Drain, v1alpha1.NodeName(n))
		}
	}
}

// peerLines renders a state's peers as "name allowed-IPs...".
func peerLines(s NodeState) []string {
	var out []string
	for p := range s.Peers.All() {
		parts := []string{p.Node}
		for _, a := range p.AllowedIPs {
			parts = append(parts, a.String())
		}
		out = append(out, strings.Join(parts, " "))
	}
	return out
}

func blockLines(bs []BlockRule) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.String())
	}
	return out
}

// errLines renders problems as "Kind/name sentinel [other Kind/name] field".
func errLines(errs []error) []string {
	var out []string
	for _, err := range errs {
		var pe *PolicyError
		if !errors.As(err, &pe) {
			out = append(out, "not a PolicyError: "+err.Error())
			continue
		}
		s := fmt.Sprintf("%s/%s %s", pe.Object.Kind, pe.Object.Name, pe.Err)
		if pe.Other != (Ref{}) {
			s += fmt.Sprintf(" [other %s/%s]", pe.Other.Kind, pe.Other.Name)
		}
		if pe.Field != "" {
			s += " " + pe.Field
		}
		out = append(out, s)
	}
	return out
}

// checkInvariants returns what is wrong with r as a whole: asymmetric
// peering, a non-member in a peer list, overlapping allowed IPs, a state
// that does not validate.
func checkInvariants(r Result) []string {
	var bad []string
	for name, st := range r.States {
		for p := range st.Peers.All() {
			other, ok := r.States[p.Node]
			if !ok {
				bad = append(bad, fmt.Sprintf("%s peers unknown node %s", name, p.Node))
				continue
			}
			if !other.Peers.Has(name) {
				bad = append(bad, fmt.Sprintf("%s peers %s but not the reverse", name, p.Node))
			}
			if !r.Nodes[p.Node].Member || r.Nodes[p.Node].Isolated {
				bad = append(bad, fmt.Sprintf("%s peers non-member %s", name, p.Node))
			}
			if p.Node == name {
				bad = append(bad, name+" peers itself")
			}
		}
		if err := checkAllowedDisjoint(st.Peers); err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", name, err))
		}
		if err := st.Validate(); err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", name, err))
		}
		if r.Nodes[name].Isolated && st.Peers.Len() > 0 {
			bad = append(bad, name+" is isolated but has peers")
		}
	}
	slices.Sort(bad)
	return bad
}
