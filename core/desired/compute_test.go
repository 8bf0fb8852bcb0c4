package desired

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
)

// computeCase pins one precedence rule (SPEC §4, §12.9). Only the
// expectations a case sets are checked; every case is also checked for
// the invariants and against the incremental Engine.
type computeCase struct {
	name    string
	nodes   []Node
	tunnel  []v1alpha1.TunnelPolicy
	route   []v1alpha1.RoutePolicy
	block   []v1alpha1.BlockPolicy
	cluster []netip.Prefix

	peers     map[string][]string // node → peerLines
	config    map[string]Config   // node → config (LocalCIDRs ignored when nil)
	endpoints map[string]string   // node → endpoint as peers see it ("" unknown)
	keepalive map[string]uint16   // node → keepalive on each of its peers
	blocks    []string            // rules, the same on every node
	noBlocks  bool                // expect no block rules at all
	clusterW  []string            // cluster CIDRs, the same on every node
	status    map[string]string   // node → "member", "isolated", "pending", "drained", "out"
	via       map[string]string   // RoutePolicy → active via
	errs      []string
}

func TestCompute(t *testing.T) {
	a, b, c, d := 0, 1, 2, 3
	for _, tc := range []computeCase{
		// ---- TunnelPolicy ----
		{
			name:   "fullmesh peers every selected node with every other",
			nodes:  []Node{node(a), node(b), node(c)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			peers: map[string][]string{
				"a": {"b 100.64.2.0/24", "c 100.64.3.0/24"},
				"b": {"a 100.64.1.0/24", "c 100.64.3.0/24"},
				"c": {"a 100.64.1.0/24", "b 100.64.2.0/24"},
			},
		},
		{
			name:   "fullmesh node selector leaves unselected nodes out of the mesh",
			nodes:  []Node{node(a, label("mesh", "yes")), node(b, label("mesh", "yes")), node(c)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0, selects("mesh", "yes"))},
			peers:  map[string][]string{"a": {"b 100.64.2.0/24"}, "b": {"a 100.64.1.0/24"}, "c": nil},
			status: map[string]string{"a": "member", "c": "out"},
		},
		{
			name:   "no TunnelPolicy means no peers, default port, not strict",
			nodes:  []Node{node(a), node(b)},
			peers:  map[string][]string{"a": nil, "b": nil},
			config: map[string]Config{"a": {ListenPort: 51820}, "b": {ListenPort: 51820}},
		},
		{
			name:   "a node selected by no policy is not strict while selected ones are",
			nodes:  []Node{node(a, label("mesh", "yes")), node(b)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0, selects("mesh", "yes"))},
			config: map[string]Config{"a": {ListenPort: 51820, PersistentKeepalive: 25, Strict: true}, "b": {ListenPort: 51820}},
		},
		{
			name:   "a node without a public key is not a peer and has no peers",
			nodes:  []Node{node(a), node(b), node(c, noKey)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			peers:  map[string][]string{"a": {"b 100.64.2.0/24"}, "b": {"a 100.64.1.0/24"}, "c": nil},
			status: map[string]string{"c": "out"},
		},
		{
			name:   "explicit pair peers only its two nodes",
			nodes:  []Node{node(a), node(b), node(c)},
			tunnel: []v1alpha1.TunnelPolicy{explicit("pairs", 0, pair("a", "b"))},
			peers:  map[string][]string{"a": {"b 100.64.2.0/24"}, "b": {"a 100.64.1.0/24"}, "c": nil},
			config: map[string]Config{"c": {ListenPort: 51820, PersistentKeepalive: 25, Strict: true}},
		},
		{
			name:   "explicit pair with a node outside the node selector does not peer",
			nodes:  []Node{node(a, label("mesh", "yes")), node(b), node(c, label("mesh", "yes"))},
			tunnel: []v1alpha1.TunnelPolicy{explicit("pairs", 0, selects("mesh", "yes"), pair("a", "b"), pair("a", "c"))},
			peers:  map[string][]string{"a": {"c 100.64.3.0/24"}, "b": nil, "c": {"a 100.64.1.0/24"}},
		},
		{
			name:   "explicit pair naming an unknown node is reported and the other pairs apply",
			nodes:  []Node{node(a), node(b)},
			tunnel: []v1alpha1.TunnelPolicy{explicit("pairs", 0, pair("a", "b"), pair("a", "zz"))},
			peers:  map[string][]string{"a": {"b 100.64.2.0/24"}, "b": {"a 100.64.1.0/24"}},
			errs:   []string{"TunnelPolicy/pairs unknown node spec.pairs[1]"},
		},
		{
			name:   "explicit group peers its members with each other only",
			nodes:  []Node{node(a, label("g", "1")), node(b, label("g", "1")), node(c, label("g", "2")), node(d, label("g", "2"))},
			tunnel: []v1alpha1.TunnelPolicy{explicit("groups", 0, group("one", "g", "1"), group("two", "g", "2"))},
			peers: map[string][]string{
				"a": {"b 100.64.2.0/24"}, "b": {"a 100.64.1.0/24"},
				"c": {"d 100.64.4.0/24"}, "d": {"c 100.64.3.0/24"},
			},
		},
		{
			name:   "explicit groups and pairs add up",
			nodes:  []Node{node(a, label("g", "1")), node(b, label("g", "1")), node(c)},
			tunnel: []v1alpha1.TunnelPolicy{explicit("mix", 0, group("one", "g", "1"), pair("b", "c"))},
			peers: map[string][]string{
				"a": {"b 100.64.2.0/24"},
				"b": {"a 100.64.1.0/24", "c 100.64.3.0/24"},
				"c": {"b 100.64.2.0/24"},
			},
		},
		{
			name:  "two overlapping FullMesh policies peer a node with the union of both",
			nodes: []Node{node(a, label("z", "1")), node(b, label("z", "1"), label("y", "1")), node(c, label("y", "1"))},
			tunnel: []v1alpha1.TunnelPolicy{
				mesh("z", 0, selects("z", "1")),
				mesh("y", 1, selects("y", "1")),
			},
			peers: map[string][]string{
				"a": {"b 100.64.2.0/24"},
				"b": {"a 100.64.1.0/24", "c 100.64.3.0/24"},
				"c": {"b 100.64.2.0/24"},
			},
		},
		{
			name:   "two policies disagreeing on listen port: the older wins and the newer is reported",
			nodes:  []Node{node(a), node(b)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("new", 5, port(51900)), mesh("old", 1, port(51830))},
			config: map[string]Config{"a": {ListenPort: 51830, PersistentKeepalive: 25, Strict: true}},
			errs: []string{
				"TunnelPolicy/new conflict [other TunnelPolicy/old] spec.listenPort",
			},
			endpoints: map[string]string{"a": "198.18.0.1:51830"},
		},
		{
			name:   "policies of the same age: the name that sorts first wins the keepalive",
			nodes:  []Node{node(a), node(b)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("beta", 0, keepalive(10)), mesh("alpha", 0, keepalive(40))},
			config: map[string]Config{"a": {ListenPort: 51820, PersistentKeepalive: 40, Strict: true}},
			errs:   []string{"TunnelPolicy/beta conflict [other TunnelPolicy/alpha] spec.persistentKeepaliveSeconds"},
		},
		{
			name:   "a node is strict if any selecting policy is strict",
			nodes:  []Node{node(a, label("s", "1")), node(b)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("loose", 0, strict(false)), mesh("tight", 1, strict(true), selects("s", "1"))},
			config: map[string]Config{
				"a": {ListenPort: 51820, PersistentKeepalive: 25, Strict: true},
				"b": {ListenPort: 51820, PersistentKeepalive: 25, Strict: false},
			},
		},
		{
			name:   "unset TunnelPolicy fields take the CRD defaults",
			nodes:  []Node{node(a)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			config: map[string]Config{"a": {ListenPort: 51820, PersistentKeepalive: 25, Strict: true}},
		},
		{
			name:  "a peer's endpoint uses the peer's own listen port",
			nodes: []Node{node(a, label("p", "1")), node(b)},
			tunnel: []v1alpha1.TunnelPolicy{
				mesh("all", 0, port(51820)),
				explicit("special", 1, selects("p", "1"), pair("a", "b")),
			},
			endpoints: map[string]string{"a": "198.18.0.1:51820", "b": "198.18.0.2:51820"},
		},
		{
			name:      "endpoint override sets address and port",
			nodes:     []Node{node(a, endpoint("198.19.0.9", 40000)), node(b)},
			tunnel:    []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			endpoints: map[string]string{"a": "198.19.0.9:40000", "b": "198.18.0.2:51820"},
		},
		{
			name:      "endpoint override without port uses the listen port",
			nodes:     []Node{node(a, endpoint("2001:db8:ff::1", 0)), node(b)},
			tunnel:    []v1alpha1.TunnelPolicy{mesh("mesh", 0, port(51999))},
			endpoints: map[string]string{"a": "[2001:db8:ff::1]:51999"},
		},
		{
			name: "endpoint prefers the first IPv4 InternalIP and falls back to IPv6",
			nodes: []Node{
				node(a, internalIPs("2001:db8:ff::1", "198.18.0.7", "198.18.0.8")),
				node(b, internalIPs("2001:db8:ff::2")),
				node(c, internalIPs()),
			},
			tunnel:    []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			endpoints: map[string]string{"a": "198.18.0.7:51820", "b": "[2001:db8:ff::2]:51820", "c": ""},
		},
		{
			name:      "every peer gets the local node's keepalive",
			nodes:     []Node{node(a, label("k", "1")), node(b)},
			tunnel:    []v1alpha1.TunnelPolicy{mesh("fast", 0, keepalive(5), selects("k", "1")), mesh("all", 1, keepalive(60))},
			keepalive: map[string]uint16{"a": 5, "b": 60},
			errs:      []string{"TunnelPolicy/all conflict [other TunnelPolicy/fast] spec.persistentKeepaliveSeconds"},
		},
		{
			name:   "a listen port that slipped past admission leaves the policy out and is reported",
			nodes:  []Node{node(a), node(b)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("bad", 0, port(70000))},
			peers:  map[string][]string{"a": nil, "b": nil},
			errs:   []string{"TunnelPolicy/bad invalid spec.listenPort"},
		},
		{
			name:  "an invalid node selector leaves the policy out and is reported",
			nodes: []Node{node(a), node(b)},
			tunnel: []v1alpha1.TunnelPolicy{func() v1alpha1.TunnelPolicy {
				t := mesh("bad", 0, selects("k", "v"))
				t.Spec.NodeSelector.MatchLabels = map[string]string{"not a key!": "v"}
				return t
			}(), mesh("good", 1)},
			peers: map[string][]string{"a": {"b 100.64.2.0/24"}, "b": {"a 100.64.1.0/24"}},
			errs:  []string{"TunnelPolicy/bad invalid spec.nodeSelector"},
		},
		{
			name:   "FullMesh with pairs is invalid and left out",
			nodes:  []Node{node(a), node(b)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("bad", 0, pair("a", "b"))},
			peers:  map[string][]string{"a": nil},
			errs:   []string{"TunnelPolicy/bad invalid spec.mode"},
		},

		// ---- derived from the Node ----
		{
			name:   "pod IPs stand in as /32 and /128 when the node has no pod CIDRs",
			nodes:  []Node{node(a, podIPs("100.64.9.5", "2001:db8:9::5", "100.64.9.4")), node(b)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			peers:  map[string][]string{"b": {"a 100.64.9.4/32 100.64.9.5/32 2001:db8:9::5/128"}},
		},
		{
			name: "pod CIDRs win over pod IPs",
			nodes: []Node{node(a, func(n *Node) {
				n.PodIPs = []netip.Addr{addr("100.64.1.7")}
			}), node(b)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			peers:  map[string][]string{"b": {"a 100.64.1.0/24"}},
		},
		{
			name:   "dual-stack pod CIDRs are both allowed IPs",
			nodes:  []Node{node(a, dualStack), node(b, dualStack)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			peers:  map[string][]string{"a": {"b 100.64.2.0/24 2001:db8:2::/48"}},
		},
		{
			name:   "two nodes with the same pod CIDR: the name that sorts first wins and the other is reported",
			nodes:  []Node{node(a), node(b, podCIDRs("100.64.1.0/24"))},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			peers:  map[string][]string{"a": {"b"}, "b": {"a 100.64.1.0/24"}},
			errs:   []string{"Node/b conflict [other Node/a]"},
		},
		{
			name:   "nested pod CIDRs of two nodes: the longer prefix wins and the outer node keeps the rest",
			nodes:  []Node{node(a, podCIDRs("100.64.0.0/22")), node(b, podCIDRs("100.64.1.0/24")), node(c)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			peers:  map[string][]string{"c": {"a 100.64.0.0/24 100.64.2.0/24", "b 100.64.1.0/24"}},
			errs:   []string{"Node/b conflict [other Node/a]", "Node/c conflict [other Node/a]"},
		},

		// ---- RoutePolicy ----
		{
			name:   "route CIDRs are carried by the first via",
			nodes:  []Node{node(a), node(b), node(c)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			route:  []v1alpha1.RoutePolicy{route("gw", 0, cidrs("198.51.100.0/24"), "b", "c")},
			peers: map[string][]string{
				"a": {"b 100.64.2.0/24 198.51.100.0/24", "c 100.64.3.0/24"},
				"b": {"a 100.64.1.0/24", "c 100.64.3.0/24"},
			},
			via: map[string]string{"gw": "b"},
		},
		{
			name:   "a route CIDR equal to a pod CIDR overrides it without a conflict",
			nodes:  []Node{node(a), node(b), node(c)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			route:  []v1alpha1.RoutePolicy{route("move", 0, cidrs("100.64.3.0/24"), "b")},
			peers:  map[string][]string{"a": {"b 100.64.2.0/24 100.64.3.0/24", "c"}},
		},
		{
			name:   "a route CIDR containing pod CIDRs overrides them without a conflict",
			nodes:  []Node{node(a), node(b), node(c)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			route:  []v1alpha1.RoutePolicy{route("wide", 0, cidrs("100.64.0.0/16"), "a")},
			peers:  map[string][]string{"b": {"a 100.64.0.0/16", "c"}, "c": {"a 100.64.0.0/16", "b"}},
		},
		{
			name:   "a route CIDR inside another node's pod CIDR takes those addresses and is reported",
			nodes:  []Node{node(a), node(b), node(c)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			route:  []v1alpha1.RoutePolicy{route("part", 0, cidrs("100.64.3.128/25"), "b")},
			peers:  map[string][]string{"a": {"b 100.64.2.0/24 100.64.3.128/25", "c 100.64.3.0/25"}},
			errs:   []string{"RoutePolicy/part conflict [other Node/c] spec.cidrs"},
		},
		{
			name:   "a route CIDR inside the via's own pod CIDR changes nothing and is no conflict",
			nodes:  []Node{node(a), node(b)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			route:  []v1alpha1.RoutePolicy{route("self", 0, cidrs("100.64.2.128/25"), "b")},
			peers:  map[string][]string{"a": {"b 100.64.2.0/24"}},
		},
		{
			name:   "two RoutePolicies claiming one CIDR: the older wins and the newer is reported",
			nodes:  []Node{node(a), node(b), node(c)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			route: []v1alpha1.RoutePolicy{
				route("newer", 9, cidrs("198.51.100.0/24"), "c"),
				route("older", 1, cidrs("198.51.100.0/24"), "b"),
			},
			peers: map[string][]string{"a": {"b 100.64.2.0/24 198.51.100.0/24", "c 100.64.3.0/24"}},
			errs:  []string{"RoutePolicy/newer conflict [other RoutePolicy/older] spec.cidrs"},
		},
		{
			name:   "nested RoutePolicy CIDRs: the more specific one wins its range without a conflict",
			nodes:  []Node{node(a), node(b), node(c)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			route: []v1alpha1.RoutePolicy{
				route("wide", 0, cidrs("198.51.100.0/24"), "b"),
				route("narrow", 1, cidrs("198.51.100.0/26"), "c"),
			},
			peers: map[string][]string{"a": {"b 100.64.2.0/24 198.51.100.64/26 198.51.100.128/25", "c 100.64.3.0/24 198.51.100.0/26"}},
		},
		{
			name:   "a via candidate without a key is skipped for the next one",
			nodes:  []Node{node(a), node(b, noKey), node(c)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			route:  []v1alpha1.RoutePolicy{route("gw", 0, cidrs("198.51.100.0/24"), "b", "c")},
			via:    map[string]string{"gw": "c"},
			peers:  map[string][]string{"a": {"c 100.64.3.0/24 198.51.100.0/24"}},
		},
		{
			name:   "a via naming an unknown node is reported and the next candidate carries the route",
			nodes:  []Node{node(a), node(b)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			route:  []v1alpha1.RoutePolicy{route("gw", 0, cidrs("198.51.100.0/24"), "ghost", "b")},
			via:    map[string]string{"gw": "b"},
			errs:   []string{"RoutePolicy/gw unknown node spec.via[0]"},
		},
		{
			name:   "no usable via: reported, nothing routed, the pod CIDR it would override stays",
			nodes:  []Node{node(a), node(b, noKey), node(c)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			route:  []v1alpha1.RoutePolicy{route("gw", 0, cidrs("100.64.3.0/24", "198.51.100.0/24"), "b")},
			via:    map[string]string{"gw": ""},
			peers:  map[string][]string{"a": {"c 100.64.3.0/24"}},
			errs:   []string{"RoutePolicy/gw no usable via spec.via"},
		},
		{
			name:   "an unparsable CIDR in a RoutePolicy is reported and the others are routed",
			nodes:  []Node{node(a), node(b)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			route:  []v1alpha1.RoutePolicy{route("gw", 0, cidrs("300.1.2.0/24", "198.51.100.0/24"), "b")},
			peers:  map[string][]string{"a": {"b 100.64.2.0/24 198.51.100.0/24"}},
			errs:   []string{"RoutePolicy/gw invalid spec.cidrs[0]"},
		},
		{
			name:   "a via outside every TunnelPolicy does not qualify",
			nodes:  []Node{node(a, label("m", "1")), node(b), node(c, label("m", "1"))},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0, selects("m", "1"))},
			route:  []v1alpha1.RoutePolicy{route("gw", 0, cidrs("198.51.100.0/24"), "b", "c")},
			via:    map[string]string{"gw": "c"},
		},

		// ---- BlockPolicy: rules ----
		{
			name:   "block rules pair every source with every destination of its family",
			nodes:  []Node{node(a), node(b)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			block: []v1alpha1.BlockPolicy{block("deny", 0, rule(
				[]string{"100.64.1.0/24", "2001:db8:1::/48"},
				[]string{"100.64.2.7/24", "2001:db8:2::/48"}))},
			blocks: []string{"100.64.1.0/24 -> 100.64.2.0/24", "2001:db8:1::/48 -> 2001:db8:2::/48"},
			peers:  map[string][]string{"a": {"b 100.64.2.0/24"}},
		},
		{
			name:     "a block rule with no source and destination of one family is reported",
			nodes:    []Node{node(a)},
			block:    []v1alpha1.BlockPolicy{block("odd", 0, rule([]string{"100.64.1.0/24"}, []string{"2001:db8::/32"}))},
			noBlocks: true,
			errs:     []string{"BlockPolicy/odd invalid spec.rules[0]"},
		},
		{
			name:   "an unparsable block CIDR is reported and the rest of the rule applies",
			nodes:  []Node{node(a)},
			block:  []v1alpha1.BlockPolicy{block("deny", 0, rule([]string{"100.64.1.0/24", "bogus"}, []string{"100.64.2.0/24"}))},
			blocks: []string{"100.64.1.0/24 -> 100.64.2.0/24"},
			errs:   []string{"BlockPolicy/deny invalid spec.rules[0].from[1]"},
		},
		{
			name:  "block rules from several policies are merged without duplicates",
			nodes: []Node{node(a)},
			block: []v1alpha1.BlockPolicy{
				block("one", 0, rule([]string{"100.64.1.0/24"}, []string{"100.64.2.0/24"})),
				block("two", 1, rule([]string{"100.64.1.0/24"}, []string{"100.64.2.0/24", "100.64.3.0/24"})),
			},
			blocks: []string{"100.64.1.0/24 -> 100.64.2.0/24", "100.64.1.0/24 -> 100.64.3.0/24"},
		},

		// ---- BlockPolicy: Isolate ----
		{
			name:   "isolate removes the node from every peer list and gives it no peers",
			nodes:  []Node{node(a), node(b), node(c)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			block:  []v1alpha1.BlockPolicy{block("q", 0, isolate("c"))},
			peers:  map[string][]string{"a": {"b 100.64.2.0/24"}, "b": {"a 100.64.1.0/24"}, "c": nil},
			config: map[string]Config{"c": {ListenPort: 51820, PersistentKeepalive: 25, Strict: true, Isolated: true}},
			status: map[string]string{"c": "isolated"},
		},
		{
			name:   "isolate blocks the node's IPv4 and IPv6 pod CIDRs to and from everything on every node",
			nodes:  []Node{node(a), node(b, dualStack)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			block:  []v1alpha1.BlockPolicy{block("q", 0, isolate("b"))},
			blocks: []string{
				"0.0.0.0/0 -> 100.64.2.0/24",
				"100.64.2.0/24 -> 0.0.0.0/0",
				"::/0 -> 2001:db8:2::/48",
				"2001:db8:2::/48 -> ::/0",
			},
		},
		{
			name:     "after isolation is lifted the node stays out until its key generation exceeds the quarantine generation",
			nodes:    []Node{node(a), node(b, keyGen(3, 3))},
			tunnel:   []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			peers:    map[string][]string{"a": nil, "b": nil},
			config:   map[string]Config{"b": {ListenPort: 51820, PersistentKeepalive: 25, Strict: true, Isolated: true}},
			noBlocks: true,
			status:   map[string]string{"b": "pending"},
		},
		{
			name:   "after a key rotation past the quarantine generation the node rejoins",
			nodes:  []Node{node(a), node(b, keyGen(4, 3))},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			peers:  map[string][]string{"a": {"b 100.64.2.0/24"}},
			status: map[string]string{"b": "member"},
		},
		{
			name:   "isolation still in force ignores a newer key",
			nodes:  []Node{node(a), node(b, keyGen(9, 3))},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			block:  []v1alpha1.BlockPolicy{block("q", 0, isolate("b"))},
			peers:  map[string][]string{"a": nil},
			status: map[string]string{"b": "isolated"},
		},
		{
			name:   "isolate beats an explicit pair",
			nodes:  []Node{node(a), node(b)},
			tunnel: []v1alpha1.TunnelPolicy{explicit("pairs", 0, pair("a", "b"))},
			block:  []v1alpha1.BlockPolicy{block("q", 0, isolate("a"))},
			peers:  map[string][]string{"a": nil, "b": nil},
		},
		{
			name:   "an isolated via is skipped: isolate beats RoutePolicy",
			nodes:  []Node{node(a), node(b), node(c)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			route:  []v1alpha1.RoutePolicy{route("gw", 0, cidrs("198.51.100.0/24"), "b", "c")},
			block:  []v1alpha1.BlockPolicy{block("q", 0, isolate("b"))},
			via:    map[string]string{"gw": "c"},
			peers:  map[string][]string{"a": {"c 100.64.3.0/24 198.51.100.0/24"}},
		},
		{
			name:   "a route over an isolated node's pod CIDR is routed but the isolation blocks still apply",
			nodes:  []Node{node(a), node(b), node(c)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			route:  []v1alpha1.RoutePolicy{route("move", 0, cidrs("100.64.3.0/24"), "b")},
			block:  []v1alpha1.BlockPolicy{block("q", 0, isolate("c"))},
			peers:  map[string][]string{"a": {"b 100.64.2.0/24 100.64.3.0/24"}},
			blocks: []string{"0.0.0.0/0 -> 100.64.3.0/24", "100.64.3.0/24 -> 0.0.0.0/0"},
		},
		{
			name:     "isolating an unknown node is reported",
			nodes:    []Node{node(a)},
			block:    []v1alpha1.BlockPolicy{block("q", 0, isolate("ghost"))},
			noBlocks: true,
			errs:     []string{"BlockPolicy/q unknown node spec.isolate[0]"},
		},

		// ---- BlockPolicy: Drain ----
		{
			name:   "drain skips the node as via and falls back to the next candidate",
			nodes:  []Node{node(a), node(b), node(c)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			route:  []v1alpha1.RoutePolicy{route("gw", 0, cidrs("198.51.100.0/24"), "b", "c")},
			block:  []v1alpha1.BlockPolicy{block("d", 0, drain("b"))},
			via:    map[string]string{"gw": "c"},
			peers:  map[string][]string{"a": {"b 100.64.2.0/24", "c 100.64.3.0/24 198.51.100.0/24"}},
			status: map[string]string{"b": "drained"},
		},
		{
			name:     "a drained node stays a peer and its own pods stay reachable",
			nodes:    []Node{node(a), node(b)},
			tunnel:   []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			block:    []v1alpha1.BlockPolicy{block("d", 0, drain("b"))},
			peers:    map[string][]string{"a": {"b 100.64.2.0/24"}, "b": {"a 100.64.1.0/24"}},
			noBlocks: true,
		},
		{
			name:   "draining every via leaves the RoutePolicy without a via and reported",
			nodes:  []Node{node(a), node(b), node(c)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			route:  []v1alpha1.RoutePolicy{route("gw", 0, cidrs("198.51.100.0/24"), "b", "c")},
			block:  []v1alpha1.BlockPolicy{block("d", 0, drain("b", "c"))},
			via:    map[string]string{"gw": ""},
			peers:  map[string][]string{"a": {"b 100.64.2.0/24", "c 100.64.3.0/24"}},
			errs:   []string{"RoutePolicy/gw no usable via spec.via"},
		},
		{
			name:   "isolate and drain of the same node: isolation wins",
			nodes:  []Node{node(a), node(b)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			block:  []v1alpha1.BlockPolicy{block("q", 0, isolate("b"), drain("b"))},
			peers:  map[string][]string{"a": nil, "b": nil},
			status: map[string]string{"b": "isolated"},
		},

		// ---- cluster and local CIDRs ----
		{
			name:     "cluster CIDRs hold every node's pod CIDRs, keyless and isolated ones too, and the configured ones",
			nodes:    []Node{node(a), node(b, noKey), node(c)},
			tunnel:   []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			block:    []v1alpha1.BlockPolicy{block("q", 0, isolate("c"))},
			cluster:  []netip.Prefix{pfx("100.64.0.0/10")},
			clusterW: []string{"100.64.0.0/10", "100.64.1.0/24", "100.64.2.0/24", "100.64.3.0/24"},
		},
		{
			name:   "local CIDRs are the node's own pod CIDRs",
			nodes:  []Node{node(a, dualStack)},
			tunnel: []v1alpha1.TunnelPolicy{mesh("mesh", 0)},
			config: map[string]Config{"a": {ListenPort: 51820, PersistentKeepalive: 25, Strict: true, LocalCIDRs: pfxs("100.64.1.0/24", "2001:db8:1::/48")}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t)
		})
	}
}

func (tc computeCase) snapshot() Snapshot {
	return Snapshot{Nodes: tc.nodes, ClusterCIDRs: tc.cluster,
		Policies: Policies{Tunnel: tc.tunnel, Route: tc.route, Block: tc.block}}
}

func (tc computeCase) run(t *testing.T) {
	t.Helper()
	r := Compute(tc.snapshot())
	for n, want := range tc.peers {
		if diff := cmp.Diff(want, peerLines(r.States[n])); diff != "" {
			t.Errorf("peers of %s (-want +got):\n%s", n, diff)
		}
	}
	for n, want := range tc.config {
		got := r.States[n].Config
		if want.LocalCIDRs == nil {
			got.LocalCIDRs = nil
		}
		if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
			t.Errorf("config of %s (-want +got):\n%s", n, diff)
		}
	}
	for n, want := range tc.endpoints {
		got := ""
		if ep := r.Nodes[n].Endpoint; ep.IsValid() {
			got = ep.String()
		}
		if got != want {
			t.Errorf("endpoint of %s = %q, want %q", n, got, want)
		}
		for m, st := range r.States {
			if p, ok := st.Peers.Get(n); ok && p.Endpoint != r.Nodes[n].Endpoint {
				t.Errorf("%s sees %s at %v, want %v", m, n, p.Endpoint, r.Nodes[n].Endpoint)
			}
		}
	}
	for n, want := range tc.keepalive {
		st := r.States[n]
		if st.Peers.Len() == 0 {
			t.Errorf("%s has no peers to check keepalive on", n)
		}
		for p := range st.Peers.All() {
			if p.PersistentKeepalive != want {
				t.Errorf("%s: peer %s keepalive %d, want %d", n, p.Node, p.PersistentKeepalive, want)
			}
		}
	}
	if tc.blocks != nil || tc.noBlocks {
		for n, st := range r.States {
			if diff := cmp.Diff(tc.blocks, blockLines(st.Blocks)); diff != "" {
				t.Errorf("blocks of %s (-want +got):\n%s", n, diff)
			}
		}
	}
	if tc.clusterW != nil {
		for n, st := range r.States {
			var got []string
			for _, p := range st.ClusterCIDRs {
				got = append(got, p.String())
			}
			if diff := cmp.Diff(tc.clusterW, got); diff != "" {
				t.Errorf("cluster CIDRs of %s (-want +got):\n%s", n, diff)
			}
		}
	}
	for n, want := range tc.status {
		s := r.Nodes[n]
		got := "out"
		switch {
		case s.Isolated:
			got = "isolated"
		case s.QuarantinePending:
			got = "pending"
		case s.Drained:
			got = "drained"
		case s.Member:
			got = "member"
		}
		if got != want {
			t.Errorf("status of %s = %s, want %s (%+v)", n, got, want, s)
		}
	}
	for rp, want := range tc.via {
		if got := r.ActiveVia[rp]; got != want {
			t.Errorf("active via of %s = %q, want %q", rp, got, want)
		}
	}
	if diff := cmp.Diff(tc.errs, errLines(r.Errors)); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	if bad := checkInvariants(r); len(bad) > 0 {
		t.Errorf("invariants broken: %v", bad)
	}
	checkIncremental(t, tc.snapshot(), r)
}

// checkIncremental builds the same inputs through the Engine one change at
// a time (policies first, then nodes in reverse, each node twice) and
// checks the states equal Compute's, and that Applying every delta to the
// previous state gives the new one.
func checkIncremental(t *testing.T, s Snapshot, want Result) {
	t.Helper()
	e, _ := NewEngine(Snapshot{ClusterCIDRs: s.ClusterCIDRs})
	held := map[string]NodeState{}
	apply := func(u Update) {
		for _, nd := range u.Deltas {
			got, err := Apply(held[nd.Node], *nd.Delta)
			if err != nil {
				t.Fatalf("apply delta to %s: %v", nd.Node, err)
			}
			held[nd.Node] = got
		}
	}
	apply(e.SetPolicies(s.Policies))
	for i := len(s.Nodes) - 1; i >= 0; i-- {
		for range 2 {
			u, err := e.UpsertNode(s.Nodes[i])
			if err != nil {
				t.Fatal(err)
			}
			apply(u)
		}
	}
	got := e.Result()
	for n, st := range want.States {
		if !Equal(st, got.States[n]) {
			t.Errorf("incremental state of %s differs from Compute:\n%s", n, cmp.Diff(st, got.States[n], cmpOpts))
		}
		if !Equal(st, held[n]) {
			t.Errorf("state of %s built from deltas differs from Compute:\n%s", n, cmp.Diff(st, held[n], cmpOpts))
		}
	}
	if diff := cmp.Diff(errLines(want.Errors), errLines(got.Errors)); diff != "" {
		t.Errorf("incremental errors differ (-compute +engine):\n%s", diff)
	}
}
