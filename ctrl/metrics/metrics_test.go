package metrics_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lumbrjx/vpblu/ctrl/metrics"
	"github.com/lumbrjx/vpblu/ctrl/metrics/metricstest"
)

func TestRegisteringTwiceOnOneRegistryFails(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := metrics.New(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := metrics.New(reg); err == nil {
		t.Error("second registration on the same registry succeeded")
	}
}

func TestRefusalReasonsStartAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var series int
	for _, f := range families {
		if f.GetName() == "vpblu_controller_auth_refusals_total" {
			series = len(f.GetMetric())
		}
	}
	if series != len(metrics.RefusalReasons) {
		t.Errorf("auth_refusals_total has %d series, want one per reason (%d)", series, len(metrics.RefusalReasons))
	}
	m.AuthRefusals.WithLabelValues("no_token").Inc()
	m.AuthRefusals.WithLabelValues("node_mismatch").Add(2)
	if got := metricstest.Value(m.AuthRefusals); got != 3 {
		t.Errorf("refusals = %v, want 3", got)
	}
}

func TestRotationOutcomesStartAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := metrics.New(reg); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]int{}
	for _, f := range families {
		series[f.GetName()] = len(f.GetMetric())
	}
	for _, name := range []string{"vpblu_controller_rotations_total", "vpblu_controller_rotation_duration_seconds"} {
		if series[name] != len(metrics.RotationOutcomes) {
			t.Errorf("%s has %d series, want one per outcome (%d)", name, series[name], len(metrics.RotationOutcomes))
		}
	}
}
