package bpf

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf/ringbuf"
)

// Drop is one sampled drop (Config.DropSample picks 1 in N).
type Drop struct {
	// Monotonic is the kernel's CLOCK_MONOTONIC time of the drop.
	Monotonic time.Duration
	Ifindex   int
	Hook      Hook
	Verdict   Verdict
	Reason    Reason
	Src, Dst  netip.Addr
	// Proto is the IP protocol of the L4 header (after IPv6 extension
	// headers), or the last header reached when the chain could not be
	// followed.
	Proto uint8
	// SrcPort and DstPort are the TCP, UDP or SCTP ports; zero for other
	// protocols and for fragments after the first.
	SrcPort, DstPort uint16
}

// Drops reads sampled drops and calls f for each, until ctx is done (then
// it returns nil) or reading fails. Run one reader per Datapath: readers
// share one ring buffer and would split the records between them.
func (d *Datapath) Drops(ctx context.Context, f func(Drop)) error {
	r, err := ringbuf.NewReader(d.classify.VpbluDrops)
	if err != nil {
		return fmt.Errorf("open drops ring buffer: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { r.Close() })
	defer stop()
	defer r.Close()
	var rec ringbuf.Record
	for {
		if err := r.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrClosed) && ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read drops: %w", err)
		}
		drop, err := decodeDrop(rec.RawSample)
		if err != nil {
			return err
		}
		f(drop)
	}
}

func decodeDrop(b []byte) (Drop, error) {
	var r dropRecord
	if err := binary.Read(bytes.NewReader(b), binary.NativeEndian, &r); err != nil {
		return Drop{}, fmt.Errorf("decode drop record of %d bytes: %w", len(b), err)
	}
	return Drop{
		Monotonic: time.Duration(r.KtimeNs),
		Ifindex:   int(r.Ifindex),
		Hook:      Hook(r.Hook),
		Verdict:   Verdict(r.Verdict),
		Reason:    Reason(r.Reason),
		Src:       addrFrom(r.Family, r.Src),
		Dst:       addrFrom(r.Family, r.Dst),
		Proto:     r.Proto,
		SrcPort:   r.Sport,
		DstPort:   r.Dport,
	}, nil
}
