package bpf

import "fmt"

// Hook names a program.
type Hook uint8

// Hooks, as in enum vpblu_hook.
const (
	HookClassify Hook = 0
	HookDeliver  Hook = 1
)

func (h Hook) String() string {
	switch h {
	case HookClassify:
		return "classify"
	case HookDeliver:
		return "deliver"
	}
	return fmt.Sprintf("hook%d", uint8(h))
}

// Verdict is what a program did with a packet.
type Verdict uint8

// Verdicts, as in enum vpblu_verdict.
const (
	// VerdictPass lets the packet continue unchanged.
	VerdictPass Verdict = 0
	// VerdictDrop drops it.
	VerdictDrop Verdict = 1
	// VerdictSteer sets the destination's fwmark so policy routing sends
	// the packet into a tunnel.
	VerdictSteer Verdict = 2
)

func (v Verdict) String() string {
	switch v {
	case VerdictPass:
		return "pass"
	case VerdictDrop:
		return "drop"
	case VerdictSteer:
		return "steer"
	}
	return fmt.Sprintf("verdict%d", uint8(v))
}

// Reason is why a program reached its verdict.
type Reason uint8

// Reasons, as in enum vpblu_reason.
const (
	ReasonNonIP     Reason = 0 // neither IPv4 nor IPv6
	ReasonMalformed Reason = 1 // IP header unreadable
	ReasonBlock     Reason = 2 // a block rule matched
	ReasonLocal     Reason = 3 // destination is a local pod CIDR
	ReasonTunnel    Reason = 4 // remote CIDR with a ready tunnel; deliver: arrived through it
	ReasonNoTunnel  Reason = 5 // cross-node destination without a ready tunnel
	ReasonIsolated  Reason = 6 // this node or the peer node is isolated
	ReasonOther     Reason = 7 // not a cluster destination
)

// How many hooks, verdicts and reasons there are (the *_MAX of the C
// enums); counters are indexed by all three.
const (
	hookMax    = 2
	verdictMax = 3
	reasonMax  = 8
)

func (r Reason) String() string {
	switch r {
	case ReasonNonIP:
		return "non-ip"
	case ReasonMalformed:
		return "malformed"
	case ReasonBlock:
		return "block"
	case ReasonLocal:
		return "local"
	case ReasonTunnel:
		return "tunnel"
	case ReasonNoTunnel:
		return "no-tunnel"
	case ReasonIsolated:
		return "isolated"
	case ReasonOther:
		return "other"
	}
	return fmt.Sprintf("reason%d", uint8(r))
}
