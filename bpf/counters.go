package bpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// counterNames names the (hook, verdict, reason) combinations the
// programs produce, as reported in TunnelStatus.verdicts.
var counterNames = map[counterKey]string{
	{HookClassify, VerdictPass, ReasonNonIP}:     "classify/pass-non-ip",
	{HookClassify, VerdictPass, ReasonMalformed}: "classify/pass-malformed",
	{HookClassify, VerdictDrop, ReasonBlock}:     "classify/drop-block",
	{HookClassify, VerdictPass, ReasonLocal}:     "classify/pass-local",
	{HookClassify, VerdictSteer, ReasonTunnel}:   "classify/steer",
	{HookClassify, VerdictDrop, ReasonNoTunnel}:  "classify/drop-no-tunnel",
	{HookClassify, VerdictPass, ReasonNoTunnel}:  "classify/pass-no-tunnel",
	{HookClassify, VerdictDrop, ReasonIsolated}:  "classify/drop-isolated",
	{HookClassify, VerdictPass, ReasonOther}:     "classify/pass-other",
	{HookDeliver, VerdictPass, ReasonNonIP}:      "deliver/pass-non-ip",
	{HookDeliver, VerdictPass, ReasonMalformed}:  "deliver/pass-malformed",
	{HookDeliver, VerdictDrop, ReasonBlock}:      "deliver/drop-block",
	{HookDeliver, VerdictDrop, ReasonIsolated}:   "deliver/drop-isolated",
	{HookDeliver, VerdictPass, ReasonTunnel}:     "deliver/pass",
}

type counterKey struct {
	hook    Hook
	verdict Verdict
	reason  Reason
}

func (k counterKey) index() uint32 {
	return (uint32(k.hook)*verdictMax+uint32(k.verdict))*reasonMax + uint32(k.reason)
}

// CounterName returns the name Counters uses for a hook, verdict and
// reason.
func CounterName(h Hook, v Verdict, r Reason) string {
	if n, ok := counterNames[counterKey{h, v, r}]; ok {
		return n
	}
	return fmt.Sprintf("%s/%s-%s", h, v, r)
}

// Counters returns packet counts per verdict, summed over CPUs, since the
// maps were created (they survive restarts). Every name the programs can
// produce is present, zero or not.
func (d *Datapath) Counters() (map[string]uint64, error) {
	sums, err := d.counterSums()
	if err != nil {
		return nil, err
	}
	out := make(map[string]uint64, len(counterNames))
	for _, name := range counterNames {
		out[name] = 0
	}
	for k, n := range sums {
		if _, known := counterNames[k]; known || n > 0 {
			out[CounterName(k.hook, k.verdict, k.reason)] = n
		}
	}
	return out, nil
}

// counterSums reads every counter, summed over CPUs.
func (d *Datapath) counterSums() (map[counterKey]uint64, error) {
	m := d.classify.VpbluCounters
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("count CPUs: %w", err)
	}
	n := int(m.MaxEntries())
	keys := make([]uint32, n)
	values := make([]uint64, n*cpus)
	var cursor ebpf.MapBatchCursor
	got, err := m.BatchLookup(&cursor, keys, values, nil)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		err = nil // the batch reached the end of the array
	}
	if errors.Is(err, ebpf.ErrNotSupported) {
		got, err = n, lookupEach(m, keys, values, cpus)
	}
	if err != nil {
		return nil, fmt.Errorf("read counters: %w", err)
	}
	out := make(map[counterKey]uint64, got)
	for i := range got {
		k, ok := counterKeyOf(keys[i])
		if !ok {
			continue
		}
		var sum uint64
		for _, v := range values[i*cpus : (i+1)*cpus] {
			sum += v
		}
		out[k] = sum
	}
	return out, nil
}

// lookupEach reads a per-CPU array key by key, for kernels without batch
// lookups.
func lookupEach(m *ebpf.Map, keys []uint32, values []uint64, cpus int) error {
	var perCPU []uint64
	for i := range keys {
		keys[i] = uint32(i)
		if err := m.Lookup(keys[i], &perCPU); err != nil {
			return err
		}
		copy(values[i*cpus:(i+1)*cpus], perCPU)
	}
	return nil
}

func counterKeyOf(i uint32) (counterKey, bool) {
	if i >= hookMax*verdictMax*reasonMax {
		return counterKey{}, false
	}
	return counterKey{Hook(i / (verdictMax * reasonMax)), Verdict(i / reasonMax % verdictMax), Reason(i % reasonMax)}, true
}
