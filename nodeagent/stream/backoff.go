package stream

import (
	"math/rand/v2"
	"time"
)

// Backoff is the reconnect delay: Initial, multiplied by Multiplier after
// every failed round over all addresses, at most Max, each delay spread by
// ±Jitter (a fraction) so that daemons do not reconnect in lockstep.
//
// A round in which a controller answered "not leader" waits at most
// StandbyMax: a standby is alive, so a leader election is under way (a
// failover), and SPEC §6 wants every daemon on the new leader within
// seconds of it taking over, not after a delay that grew while the old
// lease ran out. A standby refuses before reviewing the token, so the
// polling costs it a TLS handshake per daemon per StandbyMax.
type Backoff struct {
	Initial    time.Duration
	Max        time.Duration
	StandbyMax time.Duration
	Multiplier float64
	Jitter     float64
}

// DefaultBackoff is used for zero fields.
var DefaultBackoff = Backoff{Initial: 500 * time.Millisecond, Max: 30 * time.Second, StandbyMax: 2 * time.Second, Multiplier: 2, Jitter: 0.2}

func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = DefaultBackoff.Initial
	}
	if b.Max <= 0 {
		b.Max = DefaultBackoff.Max
	}
	if b.StandbyMax <= 0 {
		b.StandbyMax = DefaultBackoff.StandbyMax
	}
	if b.Multiplier < 1 {
		b.Multiplier = DefaultBackoff.Multiplier
	}
	if b.Jitter <= 0 || b.Jitter >= 1 {
		b.Jitter = DefaultBackoff.Jitter
	}
	return b
}

// Delay is the delay after n failed rounds (n ≥ 0), jittered with r (a
// number in [0, 1)).
func (b Backoff) Delay(n int, r float64) time.Duration {
	d := float64(b.Initial)
	for i := 0; i < n && d < float64(b.Max); i++ {
		d *= b.Multiplier
	}
	d = min(d, float64(b.Max))
	d *= 1 + b.Jitter*(2*r-1)
	return time.Duration(d)
}

// StandbyDelay is the delay after n failed rounds when the last one met a
// standby: Delay, at most StandbyMax (before jitter).
func (b Backoff) StandbyDelay(n int, r float64) time.Duration {
	b.Max = min(b.Max, b.StandbyMax)
	return b.Delay(n, r)
}

func (b Backoff) delay(n int, standby bool) time.Duration {
	if standby {
		return b.StandbyDelay(n, rand.Float64())
	}
	return b.Delay(n, rand.Float64())
}
