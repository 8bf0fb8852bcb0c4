package e2e

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"
)

// eventually polls cond every interval until it holds or timeout passes,
// and fails the test with cond's last explanation if it never held. It
// returns how long it took.
func eventually(t testing.TB, timeout, interval time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	timeout = scaled(timeout)
	start := time.Now()
	deadline := start.Add(timeout)
	var why string
	for {
		ok, reason := cond()
		if ok {
			return time.Since(start)
		}
		why = reason
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %s: %s", what, timeout, why)
		}
		time.Sleep(interval)
	}
}

// figure logs one of the suite's measured figures in the form the
// benchmarks and CI logs are grepped for: "e2e: <name> <value>".
func figure(t testing.TB, name string, value any) {
	t.Helper()
	line := fmt.Sprintf("e2e: %s %v", name, value)
	t.Log(line)
	fmt.Println(line)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/float64(time.Millisecond)) }

// percentile returns the p-th percentile (0..100) of ds, nearest rank.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(p/100*float64(len(s))+0.999999) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

// ctxFor returns a context that ends after d (stretched by the slowdown,
// like every deadline) or with the test.
func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), scaled(d))
	t.Cleanup(cancel)
	return ctx
}
