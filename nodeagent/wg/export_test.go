package wg

import "time"

// WithClock replaces the Manager's clock and timer, so tests decide when
// a keepalive hold ends.
func WithClock(now func() time.Time, after func(time.Duration, func())) ManagerOption {
	return func(m *Manager) { m.now, m.after = now, after }
}
