package bpf

import (
	"reflect"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// TestLayoutsAgree checks that every Go type this package writes to or
// reads from a map has the size and field offsets of its C struct, both as
// the compiled object's BTF describes it and as bpf2go generated it.
func TestLayoutsAgree(t *testing.T) {
	for _, load := range []struct {
		name string
		spec func() (*ebpf.CollectionSpec, error)
	}{
		{"classify", loadClassify},
		{"deliver", loadDeliver},
	} {
		cs, err := load.spec()
		if err != nil {
			t.Fatal(err)
		}
		spec := cs.Types
		for _, c := range []struct {
			c         string
			ours      any
			generated []any // bpf2go's types for both objects
		}{
			{"vpblu_lpm4", lpm4Key{}, []any{classifyVpbluLpm4{}, deliverVpbluLpm4{}}},
			{"vpblu_lpm6", lpm6Key{}, []any{classifyVpbluLpm6{}, deliverVpbluLpm6{}}},
			{"vpblu_block4", block4Key{}, []any{classifyVpbluBlock4{}, deliverVpbluBlock4{}}},
			{"vpblu_block6", block6Key{}, []any{classifyVpbluBlock6{}, deliverVpbluBlock6{}}},
			{"vpblu_dst4", dst4{}, []any{classifyVpbluDst4{}, deliverVpbluDst4{}}},
			{"vpblu_dst6", dst6{}, []any{classifyVpbluDst6{}, deliverVpbluDst6{}}},
			{"vpblu_class4", class4Value{}, []any{classifyVpbluClass4{}, deliverVpbluClass4{}}},
			{"vpblu_class6", class6Value{}, []any{classifyVpbluClass6{}, deliverVpbluClass6{}}},
			{"vpblu_remote", remoteValue{}, []any{classifyVpbluRemote{}, deliverVpbluRemote{}}},
			{"vpblu_node", nodeValue{}, []any{classifyVpbluNode{}, deliverVpbluNode{}}},
			{"vpblu_config", configValue{}, []any{classifyVpbluConfig{}, deliverVpbluConfig{}}},
			{"vpblu_rule", ruleKey{}, []any{classifyVpbluRule{}, deliverVpbluRule{}}},
			{"vpblu_drop", dropRecord{}, []any{classifyVpbluDrop{}, deliverVpbluDrop{}}},
		} {
			t.Run(load.name+"/"+c.c, func(t *testing.T) {
				var st *btf.Struct
				if err := spec.TypeByName(c.c, &st); err != nil {
					t.Fatalf("C struct %s: %v", c.c, err)
				}
				want := btfLayout(t, st)
				if got := goLayout(reflect.TypeOf(c.ours)); !reflect.DeepEqual(got, want) {
					t.Errorf("%T: Go layout %v, C layout %v", c.ours, got, want)
				}
				for _, g := range c.generated {
					if got := goLayout(reflect.TypeOf(g)); !reflect.DeepEqual(got, want) {
						t.Errorf("generated %T: layout %v, C layout %v", g, got, want)
					}
				}
			})
		}
	}
}

// field is a struct member's normalised name, offset and size in bytes.
type field struct {
	Name         string
	Offset, Size uint32
}

type layout struct {
	Size   uint32
	Fields []field
}

// norm makes C snake_case and Go CamelCase names comparable.
func norm(name string) string { return strings.ToLower(strings.ReplaceAll(name, "_", "")) }

func btfLayout(t *testing.T, st *btf.Struct) layout {
	t.Helper()
	l := layout{Size: st.Size}
	for _, m := range st.Members {
		size, err := btf.Sizeof(m.Type)
		if err != nil {
			t.Fatal(err)
		}
		l.Fields = append(l.Fields, field{norm(m.Name), m.Offset.Bytes(), uint32(size)})
	}
	return l
}

func goLayout(typ reflect.Type) layout {
	l := layout{Size: uint32(typ.Size())}
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Name == "_" {
			continue // structs.HostLayout marker
		}
		l.Fields = append(l.Fields, field{norm(f.Name), uint32(f.Offset), uint32(f.Type.Size())})
	}
	return l
}

// TestConstantsAgree checks the Go copies of the C enums.
func TestConstantsAgree(t *testing.T) {
	for _, c := range []struct {
		name     string
		ours, cs uint32
	}{
		{"classify hook", uint32(HookClassify), uint32(classifyVpbluHookVPBLU_HOOK_CLASSIFY)},
		{"deliver hook", uint32(HookDeliver), uint32(classifyVpbluHookVPBLU_HOOK_DELIVER)},
		{"hooks", hookMax, uint32(classifyVpbluHookVPBLU_HOOK_MAX)},
		{"pass", uint32(VerdictPass), uint32(classifyVpbluVerdictVPBLU_VERDICT_PASS)},
		{"drop", uint32(VerdictDrop), uint32(classifyVpbluVerdictVPBLU_VERDICT_DROP)},
		{"steer", uint32(VerdictSteer), uint32(classifyVpbluVerdictVPBLU_VERDICT_STEER)},
		{"verdicts", verdictMax, uint32(classifyVpbluVerdictVPBLU_VERDICT_MAX)},
		{"non-ip", uint32(ReasonNonIP), uint32(classifyVpbluReasonVPBLU_REASON_NON_IP)},
		{"malformed", uint32(ReasonMalformed), uint32(classifyVpbluReasonVPBLU_REASON_MALFORMED)},
		{"block", uint32(ReasonBlock), uint32(classifyVpbluReasonVPBLU_REASON_BLOCK)},
		{"local", uint32(ReasonLocal), uint32(classifyVpbluReasonVPBLU_REASON_LOCAL)},
		{"tunnel", uint32(ReasonTunnel), uint32(classifyVpbluReasonVPBLU_REASON_TUNNEL)},
		{"no-tunnel", uint32(ReasonNoTunnel), uint32(classifyVpbluReasonVPBLU_REASON_NO_TUNNEL)},
		{"isolated", uint32(ReasonIsolated), uint32(classifyVpbluReasonVPBLU_REASON_ISOLATED)},
		{"other", uint32(ReasonOther), uint32(classifyVpbluReasonVPBLU_REASON_OTHER)},
		{"reasons", reasonMax, uint32(classifyVpbluReasonVPBLU_REASON_MAX)},
		{"config strict", configStrict, uint32(classifyVpbluConfigFlagVPBLU_CONFIG_STRICT)},
		{"config isolated", configIsolated, uint32(classifyVpbluConfigFlagVPBLU_CONFIG_ISOLATED)},
		{"node ready", nodeReady, uint32(classifyVpbluNodeFlagVPBLU_NODE_READY)},
		{"node isolated", nodeIsolated, uint32(classifyVpbluNodeFlagVPBLU_NODE_ISOLATED)},
		{"node listed", nodeListed, uint32(classifyVpbluNodeFlagVPBLU_NODE_LISTED)},
		{"inline destinations", inlineDsts, uint32(classifyVpbluInlineVPBLU_INLINE_DSTS)},
		{"not inline", notInline, uint32(classifyVpbluInlineVPBLU_NOT_INLINE)},
	} {
		if c.ours != c.cs {
			t.Errorf("%s: Go %d, C %d", c.name, c.ours, c.cs)
		}
	}
	spec, err := loadClassify()
	if err != nil {
		t.Fatal(err)
	}
	if n := spec.Maps["vpblu_counters"].MaxEntries; n != hookMax*verdictMax*reasonMax {
		t.Errorf("vpblu_counters has %d entries, Go counts %d", n, hookMax*verdictMax*reasonMax)
	}
	for name := range map[string]bool{"vpblu_remote4": true, "vpblu_nodes": true, "vpblu_rules": true} {
		if n := spec.Maps[name].MaxEntries; n != slots {
			t.Errorf("%s has %d slots, Go uses %d", name, n, slots)
		}
	}
	if n := spec.Maps["vpblu_config"].MaxEntries; n != slots {
		t.Errorf("vpblu_config has %d slots, Go uses %d", n, slots)
	}
}
