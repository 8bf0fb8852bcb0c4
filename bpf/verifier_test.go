package bpf

import (
	"errors"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/lumbrjx/vpblu/tools/privtest"
)

// TestVerifier loads every program through the running kernel's verifier
// and logs what it reports (`make bpf-verify`).
func TestVerifier(t *testing.T) {
	privtest.Require(t, "load BPF programs")
	d, err := open(Options{PinDir: testPinDir(t)}, ebpf.ProgramOptions{LogLevel: ebpf.LogLevelStats})
	if err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			t.Fatalf("verifier refused a program:\n%+v", verr)
		}
		t.Fatal(err)
	}
	defer d.Close()
	for _, h := range []Hook{HookClassify, HookDeliver} {
		prog, err := d.program(h)
		if err != nil {
			t.Fatal(err)
		}
		stats := ""
		for line := range strings.Lines(prog.VerifierLog) {
			if strings.Contains(line, "processed") || strings.Contains(line, "verification time") || strings.Contains(line, "stack depth") {
				stats += "  " + line
			}
		}
		if stats == "" {
			t.Errorf("%s: the verifier log has no statistics:\n%s", h, prog.VerifierLog)
		}
		info, err := prog.Info()
		if err != nil {
			t.Fatal(err)
		}
		verified, _ := info.VerifiedInstructions()
		jited, _ := info.JitedSize()
		xlated, _ := info.TranslatedSize()
		t.Logf("%s: %d instructions verified, %d bytes translated, %d bytes JITed\n%s", h, verified, xlated, jited, stats)
	}
}

// TestProgramsCannotWritePolicy shows that policy maps are read-only to
// BPF programs (BPF_F_RDONLY_PROG): the verifier refuses a program that
// stores into a vpblu_config value.
func TestProgramsCannotWritePolicy(t *testing.T) {
	d := openTest(t, Options{})
	_, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:    ebpf.SchedCLS,
		License: "Dual BSD/GPL",
		Instructions: asm.Instructions{
			asm.StoreImm(asm.RFP, -4, 0, asm.Word),
			asm.LoadMapPtr(asm.R1, d.classify.VpbluConfig.FD()),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -4),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "out"),
			asm.StoreImm(asm.R0, 0, 0, asm.Word), // clear the strict flag
			asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
			asm.Return(),
		},
	})
	var verr *ebpf.VerifierError
	if !errors.As(err, &verr) || !strings.Contains(verr.Error(), "write into map forbidden") {
		t.Fatalf("want the verifier to refuse a write into vpblu_config, got %v", err)
	}
}
