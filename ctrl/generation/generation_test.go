package generation

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLessOrdersEpochBeforeSeq(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b Gen
		want bool
	}{
		{"lower epoch with higher seq is earlier", Gen{1, 99}, Gen{2, 0}, true},
		{"same epoch lower seq is earlier", Gen{2, 1}, Gen{2, 2}, true},
		{"equal is not less", Gen{2, 2}, Gen{2, 2}, false},
		{"higher epoch is later", Gen{3, 0}, Gen{2, 50}, false},
		{"zero is before everything", Gen{}, Gen{0, 1}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.a.Less(tc.b); got != tc.want {
				t.Errorf("%v.Less(%v) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
		})
	}
}

func TestCounterOnlyGrows(t *testing.T) {
	type step struct {
		op   string
		arg  Gen
		want Gen
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"next advances seq", []step{{"epoch", Gen{Epoch: 3}, Gen{3, 0}}, {"next", Gen{}, Gen{3, 1}}, {"next", Gen{}, Gen{3, 2}}}},
		{"a new epoch resets seq", []step{{"epoch", Gen{Epoch: 3}, Gen{3, 0}}, {"next", Gen{}, Gen{3, 1}}, {"epoch", Gen{Epoch: 4}, Gen{4, 0}}}},
		{"an older epoch is ignored", []step{{"epoch", Gen{Epoch: 5}, Gen{5, 0}}, {"next", Gen{}, Gen{5, 1}}, {"epoch", Gen{Epoch: 4}, Gen{5, 1}}}},
		{"a daemon ahead of us moves the epoch past it", []step{{"epoch", Gen{Epoch: 2}, Gen{2, 0}}, {"observe", Gen{7, 40}, Gen{8, 0}}, {"next", Gen{}, Gen{8, 1}}}},
		{"a daemon behind us changes nothing", []step{{"epoch", Gen{Epoch: 2}, Gen{2, 0}}, {"next", Gen{}, Gen{2, 1}}, {"observe", Gen{1, 40}, Gen{2, 1}}}},
		{"a daemon at our generation moves the epoch", []step{{"epoch", Gen{Epoch: 2}, Gen{2, 0}}, {"next", Gen{}, Gen{2, 1}}, {"observe", Gen{2, 1}, Gen{3, 0}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Counter
			var got, want []Gen
			for _, s := range tc.steps {
				switch s.op {
				case "epoch":
					c.StartEpoch(s.arg.Epoch)
				case "next":
					c.Next()
				case "observe":
					c.Observe(s.arg)
				}
				got = append(got, c.Current())
				want = append(want, s.want)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("generations (-want +got):\n%s", d)
			}
		})
	}
}

func TestProtoRoundTrip(t *testing.T) {
	g := Gen{Epoch: 7, Seq: 1 << 40}
	if got := FromProto(g.Proto()); got != g {
		t.Errorf("FromProto(Proto(%v)) = %v", g, got)
	}
	if got := FromProto(nil); !got.IsZero() {
		t.Errorf("FromProto(nil) = %v, want zero", got)
	}
	if got := g.String(); got != "7.1099511627776" {
		t.Errorf("String() = %q", got)
	}
}
