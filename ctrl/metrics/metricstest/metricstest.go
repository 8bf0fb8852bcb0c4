// Package metricstest reads collector values in tests.
package metricstest

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Value sums every sample a collector holds: the value of a gauge or
// counter, the sum over all label values of a vector, or the sample count
// of a histogram.
func Value(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 64)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	var sum float64
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			continue
		}
		switch {
		case pb.Gauge != nil:
			sum += pb.Gauge.GetValue()
		case pb.Counter != nil:
			sum += pb.Counter.GetValue()
		case pb.Histogram != nil:
			sum += float64(pb.Histogram.GetSampleCount())
		}
	}
	return sum
}
