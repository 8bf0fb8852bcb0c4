package health

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options configure the handler.
type Options struct {
	// Ready returns nil when the daemon is ready (stream connected, last
	// state applied), else why not. Required.
	Ready func() error
	// Live, when set, must return nil for /healthz to pass.
	Live func() error
	// Gatherer serves /metrics; prometheus.DefaultGatherer when nil.
	Gatherer prometheus.Gatherer
}

// Handler serves /healthz, /readyz and /metrics.
func Handler(opts Options) http.Handler {
	g := opts.Gatherer
	if g == nil {
		g = prometheus.DefaultGatherer
	}
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", check(opts.Live))
	mux.Handle("GET /readyz", check(opts.Ready))
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	return mux
}

func check(f func() error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if f != nil {
			if err := f(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte(err.Error() + "\n"))
				return
			}
		}
		_, _ = w.Write([]byte("ok\n"))
	})
}
