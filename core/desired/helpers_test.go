package desired

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
)

// cmpOpts make cmp.Diff print netip values and peer sets element by
// element.
var cmpOpts = cmp.Options{
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
	cmp.Transformer("PeerSet", func(s PeerSet) []Peer { return s.Slice() }),
	cmp.Transformer("RouteList", func(l RouteList) []Route { return l.Slice() }),
	cmp.Transformer("NameList", func(l NameList) []string { return l.Slice() }),
}

func pfx(s string) netip.Prefix  { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr   { return netip.MustParseAddr(s) }
func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
func pfxs(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, pfx(s))
	}
	return out
}

// key returns a distinct non-zero test key for i.
func key(i int) Key {
	var k Key
	binary.BigEndian.PutUint64(k[:], uint64(i)+1)
	k[31] = 0x42
	return k
}

// benchNode returns node i of a large cluster: IPv4 /24 and IPv6 /64 pod
// CIDRs, a node IP in 198.18.0.0/15 and a key.
func benchNode(i int) Node {
	return Node{
		Name:        fmt.Sprintf("node-%05d", i),
		Labels:      map[string]string{"zone": fmt.Sprintf("z%d", i%3)},
		InternalIPs: []netip.Addr{netip.AddrFrom4([4]byte{198, 18 + byte(i>>16&1), byte(i >> 8), byte(i)})},
		PodCIDRs: []netip.Prefix{
			netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64 + byte(i>>8), byte(i), 0}), 24),
			netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, byte(i >> 8), byte(i)}), 64),
		},
		PublicKey:     key(i),
		KeyGeneration: 1,
	}
}

func fullMesh(name string) v1alpha1.TunnelPolicy {
	return v1alpha1.TunnelPolicy{
		ObjectMeta: meta(name, 0),
		Spec:       v1alpha1.TunnelPolicySpec{Mode: v1alpha1.FullMesh},
	}
}

// meta returns object metadata created age minutes after a fixed instant.
func meta(name string, age int) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(time.Date(2025, 1, 1, 0, age, 0, 0, time.UTC))}
}
