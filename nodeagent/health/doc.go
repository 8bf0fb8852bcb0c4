// Package health serves the daemon's /healthz, /readyz and Prometheus
// /metrics (SPEC §15).
//
// Liveness says the process serves HTTP (and passes an optional check);
// readiness says the stream is connected and the last state is applied.
// Metrics are read at scrape time from a Source, so peers that went away
// leave no stale series. The package holds no state of the daemon and
// imports none of its packages: the daemon adapts its parts to Source.
package health
