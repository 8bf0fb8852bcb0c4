package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
)

// TestBadInput (§12.15): invalid objects are refused at admission with a
// message naming the field; conflicting policies get a Conflict
// condition; a block policy too big for the data plane's maps gets a
// MapCapacity condition and the previous state stays in force, whole.
func TestBadInput(t *testing.T, c Cluster) {
	ensureMesh(t, c)
	ctx := ctxFor(t, 3*time.Minute)

	t.Run("invalid objects are refused naming the field", func(t *testing.T) {
		for _, tc := range []struct {
			obj   client.Object
			field string
		}{
			{&v1alpha1.BlockPolicy{ObjectMeta: metav1.ObjectMeta{Name: "bad-cidr"}, Spec: v1alpha1.BlockPolicySpec{Rules: []v1alpha1.BlockRule{{From: []v1alpha1.CIDR{"100.64.1.0/33"}, To: []v1alpha1.CIDR{"100.64.2.0/24"}}}}}, "spec.rules[0].from[0]"},
			{&v1alpha1.RoutePolicy{ObjectMeta: metav1.ObjectMeta{Name: "bad-v6"}, Spec: v1alpha1.RoutePolicySpec{CIDRs: []v1alpha1.CIDR{"2001:db8::g/64"}, Via: []v1alpha1.NodeName{"node-1"}}}, "spec.cidrs[0]"},
			{&v1alpha1.TunnelPolicy{ObjectMeta: metav1.ObjectMeta{Name: "bad-port"}, Spec: v1alpha1.TunnelPolicySpec{Mode: v1alpha1.FullMesh, ListenPort: 70000}}, "spec.listenPort"},
			{&v1alpha1.RotationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "bad-cron"}, Spec: v1alpha1.RotationPolicySpec{Schedule: "61 * * * *", OverlapWindow: metav1.Duration{Duration: time.Minute}}}, "spec.schedule"},
		} {
			err := c.Client().Create(ctx, tc.obj)
			if err == nil {
				_ = c.Client().Delete(ctx, tc.obj)
				t.Errorf("%T %s accepted", tc.obj, tc.obj.GetName())
			} else if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("%T %s refused without naming %s: %v", tc.obj, tc.obj.GetName(), tc.field, err)
			}
		}
	})

	t.Run("conflicting route policies get a Conflict condition", func(t *testing.T) {
		nodes := c.Nodes()
		first := &v1alpha1.RoutePolicy{ObjectMeta: metav1.ObjectMeta{Name: "e2e-route-a"}, Spec: v1alpha1.RoutePolicySpec{CIDRs: []v1alpha1.CIDR{"10.250.0.0/16"}, Via: []v1alpha1.NodeName{v1alpha1.NodeName(nodes[0].Name)}}}
		second := &v1alpha1.RoutePolicy{ObjectMeta: metav1.ObjectMeta{Name: "e2e-route-b"}, Spec: v1alpha1.RoutePolicySpec{CIDRs: []v1alpha1.CIDR{"10.250.0.0/16"}, Via: []v1alpha1.NodeName{v1alpha1.NodeName(nodes[1].Name)}}}
		for _, p := range []*v1alpha1.RoutePolicy{first, second} {
			if err := c.Client().Create(ctx, p); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = deleteIfExists(ctx, c.Client(), p) })
		}
		eventually(t, 30*time.Second, 100*time.Millisecond, "one of two policies claiming one CIDR reports the conflict", func() (bool, string) {
			var msgs []string
			for _, p := range []*v1alpha1.RoutePolicy{first, second} {
				got := &v1alpha1.RoutePolicy{}
				if err := c.Client().Get(ctx, types.NamespacedName{Name: p.Name}, got); err != nil {
					return false, err.Error()
				}
				if cond := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionConflict); cond != nil && cond.Status == metav1.ConditionTrue {
					msgs = append(msgs, cond.Message)
				}
			}
			return len(msgs) >= 1, fmt.Sprintf("conflict conditions: %v", msgs)
		})
		pingAll(t, c)
	})

	t.Run("a block policy too big for the maps keeps the previous state whole", func(t *testing.T) {
		pair := crossNodePairs(c)[0]
		a, b := pair[0], pair[1]
		small := &v1alpha1.BlockPolicy{ObjectMeta: metav1.ObjectMeta{Name: "e2e-small-block"}, Spec: v1alpha1.BlockPolicySpec{Rules: []v1alpha1.BlockRule{{From: []v1alpha1.CIDR{hostPrefix(a.IPv4)}, To: []v1alpha1.CIDR{hostPrefix(b.IPv4)}}}}}
		if err := c.Client().Create(ctx, small); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = deleteIfExists(ctx, c.Client(), small) })
		eventually(t, 10*time.Second, 100*time.Millisecond, "the small block is enforced", func() (bool, string) {
			_, err := c.Ping(ctx, a, b.IPv4, "-c", "1", "-W", "1")
			return err != nil, "ping still passes"
		})
		// More distinct rules than the maps hold, in 10.0.0.0/8 so they
		// match no pod.
		huge := &v1alpha1.BlockPolicy{ObjectMeta: metav1.ObjectMeta{Name: "e2e-huge-block"}}
		for i := 0; len(huge.Spec.Rules) < 1024 && i <= c.BlockCapacity(); i++ {
			huge.Spec.Rules = append(huge.Spec.Rules, v1alpha1.BlockRule{
				From: []v1alpha1.CIDR{v1alpha1.CIDR(fmt.Sprintf("10.%d.%d.0/24", i/256, i%256))},
				To:   []v1alpha1.CIDR{v1alpha1.CIDR(fmt.Sprintf("10.200.%d.%d/32", i/256, i%256))},
			})
		}
		if len(huge.Spec.Rules) <= c.BlockCapacity() {
			t.Fatalf("cannot exceed a block capacity of %d with one policy", c.BlockCapacity())
		}
		if err := c.Client().Create(ctx, huge); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = deleteIfExists(ctx, c.Client(), huge) })
		eventually(t, 30*time.Second, 100*time.Millisecond, "every node reports its maps are full", func() (bool, string) {
			for _, n := range c.Nodes() {
				vn := &v1alpha1.VpbluNode{}
				if err := c.Client().Get(ctx, types.NamespacedName{Name: n.Name}, vn); err != nil {
					return false, err.Error()
				}
				cond := meta.FindStatusCondition(vn.Status.Conditions, v1alpha1.ConditionCapacity)
				if cond == nil || cond.Status != metav1.ConditionFalse {
					return false, fmt.Sprintf("%s: MapCapacity condition %v", n.Name, cond)
				}
			}
			return true, ""
		})
		// The previous state is still whole: the small block holds and
		// other traffic flows.
		if _, err := c.Ping(ctx, a, b.IPv4, "-c", "1", "-W", "1"); err == nil {
			t.Errorf("the small block was lost when the huge one did not fit")
		}
		if out, err := c.Ping(ctx, a, b.IPv6, "-c", "1", "-W", "2"); err != nil {
			t.Errorf("unblocked traffic stopped when the maps overflowed: %v\n%s", err, out)
		}
		if err := c.Client().Delete(ctx, huge); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, 100*time.Millisecond, "the MapCapacity condition clears", func() (bool, string) {
			for _, n := range c.Nodes() {
				vn := &v1alpha1.VpbluNode{}
				if err := c.Client().Get(ctx, types.NamespacedName{Name: n.Name}, vn); err != nil {
					return false, err.Error()
				}
				if cond := meta.FindStatusCondition(vn.Status.Conditions, v1alpha1.ConditionCapacity); cond != nil && cond.Status == metav1.ConditionFalse {
					return false, n.Name + " still reports full maps"
				}
			}
			return true, ""
		})
	})
}
