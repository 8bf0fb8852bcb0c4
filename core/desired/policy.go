package desired

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/core/cidr"
)

// Defaults applied when a policy field is unset, the same as the CRD's.
const (
	DefaultKeepalive = 25
	// DefaultStrict is the strict flag of a TunnelPolicy that does not say.
	DefaultStrict = true
)

// compiled is the policies in the form the engine uses: parsed, checked,
// ordered by precedence.
type compiled struct {
	tunnels []*tunnelPol // oldest first
	routes  []*routePol  // oldest first
	// isolate and drain map a node name to the BlockPolicies naming it.
	isolate map[string][]string
	drain   map[string][]string
	// nodeRefs are node names the policies mention, to report unknown ones.
	nodeRefs []nodeRef
	// static are the block rules of BlockPolicy rules, sorted, unique.
	static []BlockRule
	// groups counts group ids (see tunnelPol).
	groups int
	errs   []*PolicyError
}

// nodeRef is a node name an object mentions.
type nodeRef struct {
	obj   Ref
	field string
	node  string
}

// tunnelPol is a TunnelPolicy ready to match. Peering is by group: a
// FullMesh policy is one group of every node it selects; an Explicit
// policy has one group per spec.groups entry (its members) and one per
// pair. Every member of a group peers every other member.
type tunnelPol struct {
	name      string
	sel       labels.Selector
	port      uint16
	keepalive uint16
	strict    bool
	fullMesh  int32 // group id, or -1 for Explicit
	groups    []groupSel
	pairs     map[string][]int32 // node name → ids of its pairs
}

type groupSel struct {
	id  int32
	sel labels.Selector
}

// routePol is a RoutePolicy ready to resolve.
type routePol struct {
	name  string
	rank  int // precedence: 0 is the oldest
	cidrs []netip.Prefix
	via   []string
}

// byAge orders objects oldest first (creationTimestamp, then name): the
// order in which conflicting policies win, as Gateway API resolves route
// conflicts.
func byAge(a, b metav1.ObjectMeta) int {
	if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

// selector converts an optional node selector; nil selects every node.
func selector(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return labels.Everything(), nil
	}
	return metav1.LabelSelectorAsSelector(s)
}

func compile(p Policies) *compiled {
	c := &compiled{isolate: map[string][]string{}, drain: map[string][]string{}}
	c.compileTunnels(p.Tunnel)
	c.compileRoutes(p.Route)
	c.compileBlocks(p.Block)
	return c
}

func (c *compiled) errorf(obj Ref, field string, err error, format string, args ...any) {
	c.errs = append(c.errs, &PolicyError{Object: obj, Field: field, Err: err, Detail: fmt.Sprintf(format, args...)})
}

// dedupe sorts objects by age and drops a repeated name (the snapshot is
// broken then; the older object wins), reporting it.
func dedupe[T any](c *compiled, kind Kind, in []T, meta func(*T) metav1.ObjectMeta) []*T {
	out := make([]*T, 0, len(in))
	for i := range in {
		out = append(out, &in[i])
	}
	slices.SortStableFunc(out, func(a, b *T) int { return byAge(meta(a), meta(b)) })
	seen := map[string]bool{}
	return slices.DeleteFunc(out, func(t *T) bool {
		n := meta(t).Name
		if seen[n] {
			c.errorf(Ref{kind, n}, "metadata.name", ErrInvalid, "the snapshot holds two objects of this name; the older one is used")
			return true
		}
		seen[n] = true
		return false
	})
}

func (c *compiled) compileTunnels(in []v1alpha1.TunnelPolicy) {
	for _, tp := range dedupe(c, KindTunnelPolicy, in, func(t *v1alpha1.TunnelPolicy) metav1.ObjectMeta { return t.ObjectMeta }) {
		ref := Ref{KindTunnelPolicy, tp.Name}
		s := &tp.Spec
		t := &tunnelPol{name: tp.Name, fullMesh: -1, port: v1alpha1.DefaultListenPort, keepalive: DefaultKeepalive, strict: DefaultStrict}
		sel, err := selector(s.NodeSelector)
		if err != nil {
			c.errorf(ref, "spec.nodeSelector", ErrInvalid, "%v; the policy is not applied", err)
			continue
		}
		t.sel = sel
		if s.ListenPort != 0 {
			if s.ListenPort < 1 || s.ListenPort > 65534 {
				c.errorf(ref, "spec.listenPort", ErrInvalid, "%d is outside 1-65534; the policy is not applied", s.ListenPort)
				continue
			}
			t.port = uint16(s.ListenPort)
		}
		if s.PersistentKeepaliveSeconds != nil {
			if k := *s.PersistentKeepaliveSeconds; k < 0 || k > 65535 {
				c.errorf(ref, "spec.persistentKeepaliveSeconds", ErrInvalid, "%d is outside 0-65535; the policy is not applied", k)
				continue
			}
			t.keepalive = uint16(*s.PersistentKeepaliveSeconds)
		}
		if s.Strict != nil {
			t.strict = *s.Strict
		}
		switch s.Mode {
		case v1alpha1.FullMesh:
			if len(s.Pairs) > 0 || len(s.Groups) > 0 {
				c.errorf(ref, "spec.mode", ErrInvalid, "mode FullMesh with pairs or groups; the policy is not applied")
				continue
			}
			t.fullMesh = c.newGroup()
		case v1alpha1.Explicit:
			if len(s.Pairs) == 0 && len(s.Groups) == 0 {
				c.errorf(ref, "spec.mode", ErrInvalid, "mode Explicit without pairs or groups; the policy is not applied")
				continue
			}
			c.compileExplicit(ref, t, s)
		default:
			c.errorf(ref, "spec.mode", ErrInvalid, "unknown mode %q; the policy is not applied", s.Mode)
			continue
		}
		c.tunnels = append(c.tunnels, t)
	}
}

func (c *compiled) compileExplicit(ref Ref, t *tunnelPol, s *v1alpha1.TunnelPolicySpec) {
	for i, g := range s.Groups {
		sel, err := metav1.LabelSelectorAsSelector(&g.Selector)
		if err != nil {
			c.errorf(ref, fmt.Sprintf("spec.groups[%d].selector", i), ErrInvalid, "group %q: %v; the group is not applied", g.Name, err)
			continue
		}
		t.groups = append(t.groups, groupSel{id: c.newGroup(), sel: sel})
	}
	t.pairs = map[string][]int32{}
	seen := map[[2]string]bool{}
	for i, p := range s.Pairs {
		a, b := string(p.A), string(p.B)
		field := fmt.Sprintf("spec.pairs[%d]", i)
		if a == "" || b == "" || a == b {
			c.errorf(ref, field, ErrInvalid, "pair %q-%q does not name two different nodes; the pair is not applied", a, b)
			continue
		}
		if a > b {
			a, b = b, a
		}
		if seen[[2]string{a, b}] {
			continue
		}
		seen[[2]string{a, b}] = true
		id := c.newGroup()
		t.pairs[a] = append(t.pairs[a], id)
		t.pairs[b] = append(t.pairs[b], id)
		c.nodeRefs = append(c.nodeRefs, nodeRef{ref, field, a}, nodeRef{ref, field, b})
	}
}

func (c *compiled) newGroup() int32 {
	c.groups++
	return int32(c.groups - 1)
}

func (c *compiled) compileRoutes(in []v1alpha1.RoutePolicy) {
	for _, rp := range dedupe(c, KindRoutePolicy, in, func(r *v1alpha1.RoutePolicy) metav1.ObjectMeta { return r.ObjectMeta }) {
		ref := Ref{KindRoutePolicy, rp.Name}
		r := &routePol{name: rp.Name, rank: len(c.routes)}
		for i, s := range rp.Spec.CIDRs {
			p, err := cidr.Parse(string(s))
			if err != nil {
				c.errorf(ref, fmt.Sprintf("spec.cidrs[%d]", i), ErrInvalid, "%v; this CIDR is not routed", err)
				continue
			}
			r.cidrs = append(r.cidrs, p)
		}
		r.cidrs = cidr.Sort(r.cidrs)
		seen := map[string]bool{}
		for i, v := range rp.Spec.Via {
			name := string(v)
			if name == "" || seen[name] {
				continue
			}
			seen[name] = true
			r.via = append(r.via, name)
			c.nodeRefs = append(c.nodeRefs, nodeRef{ref, fmt.Sprintf("spec.via[%d]", i), name})
		}
		if len(r.cidrs) == 0 {
			if len(rp.Spec.CIDRs) == 0 {
				c.errorf(ref, "spec.cidrs", ErrInvalid, "no CIDRs; the policy routes nothing")
			}
			continue
		}
		c.routes = append(c.routes, r)
	}
}

func (c *compiled) compileBlocks(in []v1alpha1.BlockPolicy) {
	var rules []BlockRule
	for _, bp := range dedupe(c, KindBlockPolicy, in, func(b *v1alpha1.BlockPolicy) metav1.ObjectMeta { return b.ObjectMeta }) {
		ref := Ref{KindBlockPolicy, bp.Name}
		for i, r := range bp.Spec.Rules {
			parse := func(field string, in []v1alpha1.CIDR) []netip.Prefix {
				var out []netip.Prefix
				for j, s := range in {
					p, err := cidr.Parse(string(s))
					if err != nil {
						c.errorf(ref, fmt.Sprintf("spec.rules[%d].%s[%d]", i, field, j), ErrInvalid, "%v; this CIDR is left out of the rule", err)
						continue
					}
					out = append(out, p)
				}
				return out
			}
			from, to := parse("from", r.From), parse("to", r.To)
			n := 0
			for _, f := range from {
				for _, t := range to {
					if f.Addr().Is4() == t.Addr().Is4() {
						rules = append(rules, BlockRule{Src: f, Dst: t})
						n++
					}
				}
			}
			if n == 0 && len(from) > 0 && len(to) > 0 {
				c.errorf(ref, fmt.Sprintf("spec.rules[%d]", i), ErrInvalid, "no source and destination of one family; the rule matches nothing")
			}
		}
		for i, n := range bp.Spec.Isolate {
			c.isolate[string(n)] = append(c.isolate[string(n)], bp.Name)
			c.nodeRefs = append(c.nodeRefs, nodeRef{ref, fmt.Sprintf("spec.isolate[%d]", i), string(n)})
		}
		for i, n := range bp.Spec.Drain {
			c.drain[string(n)] = append(c.drain[string(n)], bp.Name)
			c.nodeRefs = append(c.nodeRefs, nodeRef{ref, fmt.Sprintf("spec.drain[%d]", i), string(n)})
		}
	}
	slices.SortFunc(rules, compareBlock)
	c.static = slices.Compact(rules)
}
