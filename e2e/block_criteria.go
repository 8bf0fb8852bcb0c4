package e2e

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
)

// TestBlockPolicy (§12.4, §12.14): a BlockPolicy drops matching traffic
// within 1 s of being applied (p99 ≤ 100 ms over 20 applications per
// family), only matching traffic, and lifting it restores traffic.
func TestBlockPolicy(t *testing.T, c Cluster) {
	ensureMesh(t, c)
	ctx := ctxFor(t, 5*time.Minute)
	pairs := crossNodePairs(c)
	a, b := pairs[0][0], pairs[0][1]
	// A bystander pair must be untouched by the block.
	bystander := pairs[len(pairs)-1]

	for _, fam := range families {
		flow, err := c.StartFlow(a, b, b.Addr(fam), flowRate(1000))
		if err != nil {
			t.Fatal(err)
		}
		other, err := c.StartFlow(bystander[0], bystander[1], bystander[1].Addr(fam), flowRate(200))
		if err != nil {
			t.Fatal(err)
		}
		var latencies []time.Duration
		for i := range 20 {
			policy := &v1alpha1.BlockPolicy{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("e2e-block-%s-%d", fam, i)},
				Spec: v1alpha1.BlockPolicySpec{Rules: []v1alpha1.BlockRule{{
					From: []v1alpha1.CIDR{hostPrefix(a.Addr(fam))},
					To:   []v1alpha1.CIDR{hostPrefix(b.Addr(fam))},
				}}},
			}
			applied := time.Now()
			if err := c.Client().Create(ctx, policy); err != nil {
				t.Fatal(err)
			}
			// Enforced once nothing arrives any more: at 1000 datagrams a
			// second, 150 ms of silence means blocked, and the last
			// datagram that got through marks the moment.
			eventually(t, 1150*time.Millisecond, 10*time.Millisecond, "block enforced within 1s", func() (bool, string) {
				return time.Since(flow.Stats().LastReceived) > scaled(150*time.Millisecond),
					fmt.Sprintf("datagrams still arriving %s after the policy", time.Since(applied).Round(time.Millisecond))
			})
			last := flow.Stats().LastReceived
			latencies = append(latencies, max(last.Sub(applied), 0))

			if err := c.Client().Delete(ctx, policy); err != nil {
				t.Fatal(err)
			}
			lifted := time.Now()
			eventually(t, 2*time.Second, 20*time.Millisecond, "traffic restored after the block is lifted", func() (bool, string) {
				return flow.Stats().LastReceived.After(lifted), "no datagram since the policy was deleted"
			})
		}
		flow.Stop(0)
		bs := other.Stop(300 * time.Millisecond)
		p99 := percentile(latencies, 99)
		t.Logf("%s: block enforcement over %d applications: %v", fam, len(latencies), latencies)
		figure(t, "block-apply-p50-ms-"+fam, ms(percentile(latencies, 50)))
		figure(t, "block-apply-p99-ms-"+fam, ms(p99))
		figure(t, "block-apply-max-ms-"+fam, ms(percentile(latencies, 100)))
		checkTiming(t, fmt.Sprintf("%s: block enforcement p99 over %d applications %v", fam, len(latencies), latencies), p99, 100*time.Millisecond)
		if bs.Lost != 0 {
			t.Errorf("%s: the bystander flow %s→%s lost %d of %d datagrams: blocks hit traffic they do not match", fam, bystander[0].Name, bystander[1].Name, bs.Lost, bs.Sent)
		}
	}
}
