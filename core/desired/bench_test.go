package desired

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
)

func benchSnapshot(n int) Snapshot {
	s := Snapshot{Policies: Policies{Tunnel: []v1alpha1.TunnelPolicy{fullMesh("mesh")}}}
	s.Nodes = make([]Node, n)
	for i := range n {
		s.Nodes[i] = benchNode(i)
	}
	return s
}

// joinTime returns the median time of an UpsertNode that adds one node to
// an n-node FullMesh (each join is undone before the next).
func joinTime(n int) time.Duration {
	e, _ := NewEngine(benchSnapshot(n))
	runtime.GC()
	const rounds = 21
	times := make([]time.Duration, 0, rounds)
	for k := range rounds {
		nn := benchNode(n + k)
		t0 := time.Now()
		if _, err := e.UpsertNode(nn); err != nil {
			panic(err)
		}
		times = append(times, time.Since(t0))
		e.RemoveNode(nn.Name)
	}
	slices.Sort(times)
	return times[rounds/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkDesired prints the figures of SPEC §5/§16 for core/desired, each
// measured in this one run: a full compute of a 5000-node FullMesh, a node
// joining it (median of 21), the join time at 5000 over 500 nodes (linear
// cost gives about 10, quadratic about 100), and the heap that holds the
// 5000 nodes' states.
func BenchmarkDesired(b *testing.B) {
	for range b.N {
		s := benchSnapshot(5000)
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		t0 := time.Now()
		e, _ := NewEngine(s)
		full := time.Since(t0)
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		// The engine holds its own copy of every input and every state.
		heap := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / (1 << 20)
		if st, _ := e.State("node-00000"); st.Peers.Len() != 4999 {
			b.Fatalf("%d peers", st.Peers.Len())
		}
		runtime.KeepAlive(e)

		j500 := joinTime(500)
		j5000 := joinTime(5000)
		fmt.Printf("desired: full-compute-5000 %.2f\n", ms(full))
		fmt.Printf("desired: node-join-delta-5000 %.3f\n", ms(j5000))
		fmt.Printf("desired: node-join-delta-ratio-5000/500 %.1f\n", float64(j5000)/float64(j500))
		fmt.Printf("desired: fullmesh-5000-heap-MiB %.1f\n", heap)
	}
}
