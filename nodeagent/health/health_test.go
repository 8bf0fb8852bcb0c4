package health_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/lumbrjx/vpblu/nodeagent/health"
)

var now = time.Unix(1700000000, 0)

func TestCollectorExportsTheSnapshot(t *testing.T) {
	snap := health.Snapshot{
		Backend: "userspace",
		MTU:     1420,
		Peers: []health.Peer{
			{Interface: "wg-mesh", Node: "node-b", LastHandshake: now.Add(-30 * time.Second), RxBytes: 1000, TxBytes: 2000},
			{Interface: "wg-mesh", Node: "node-c", LastHandshake: now.Add(-10 * time.Minute), RxBytes: 5, TxBytes: 6},
			{Interface: "wg-mesh", Node: "node-d"},
			{Interface: "wg-rot", Node: "node-b", LastHandshake: now.Add(-time.Second), RxBytes: 1, TxBytes: 2},
		},
		Stream:   health.Stream{Connected: true, Connects: 3, AppliedEpoch: 2, AppliedSeq: 41, Acks: map[string]uint64{"ACK_OK": 40, "ACK_GAP": 1}},
		Verdicts: map[string]uint64{"classify/steer": 99, "classify/drop-block": 7},
	}
	c := health.NewCollector(health.SourceFunc(func() health.Snapshot { return snap }), func() time.Time { return now })
	want := `
# HELP vpblu_agent_acks_total Acks sent to the controller, by code.
# TYPE vpblu_agent_acks_total counter
vpblu_agent_acks_total{code="ACK_GAP"} 1
vpblu_agent_acks_total{code="ACK_OK"} 40
# HELP vpblu_agent_applied_generation_epoch Epoch of the generation of the running state.
# TYPE vpblu_agent_applied_generation_epoch gauge
vpblu_agent_applied_generation_epoch 2
# HELP vpblu_agent_applied_generation_seq Sequence of the generation of the running state.
# TYPE vpblu_agent_applied_generation_seq gauge
vpblu_agent_applied_generation_seq 41
# HELP vpblu_agent_info The daemon's WireGuard backend (value is always 1).
# TYPE vpblu_agent_info gauge
vpblu_agent_info{backend="userspace"} 1
# HELP vpblu_agent_mtu_bytes MTU of the WireGuard interface.
# TYPE vpblu_agent_mtu_bytes gauge
vpblu_agent_mtu_bytes 1420
# HELP vpblu_agent_peer_handshake_age_seconds Seconds since the last completed handshake with a peer (+Inf: never).
# TYPE vpblu_agent_peer_handshake_age_seconds gauge
vpblu_agent_peer_handshake_age_seconds{interface="wg-mesh",peer="node-b"} 30
vpblu_agent_peer_handshake_age_seconds{interface="wg-mesh",peer="node-c"} 600
vpblu_agent_peer_handshake_age_seconds{interface="wg-mesh",peer="node-d"} +Inf
vpblu_agent_peer_handshake_age_seconds{interface="wg-rot",peer="node-b"} 1
# HELP vpblu_agent_peer_receive_bytes_total Bytes received from a peer by the WireGuard interface.
# TYPE vpblu_agent_peer_receive_bytes_total counter
vpblu_agent_peer_receive_bytes_total{interface="wg-mesh",peer="node-b"} 1000
vpblu_agent_peer_receive_bytes_total{interface="wg-mesh",peer="node-c"} 5
vpblu_agent_peer_receive_bytes_total{interface="wg-mesh",peer="node-d"} 0
vpblu_agent_peer_receive_bytes_total{interface="wg-rot",peer="node-b"} 1
# HELP vpblu_agent_peer_transmit_bytes_total Bytes sent to a peer by the WireGuard interface.
# TYPE vpblu_agent_peer_transmit_bytes_total counter
vpblu_agent_peer_transmit_bytes_total{interface="wg-mesh",peer="node-b"} 2000
vpblu_agent_peer_transmit_bytes_total{interface="wg-mesh",peer="node-c"} 6
vpblu_agent_peer_transmit_bytes_total{interface="wg-mesh",peer="node-d"} 0
vpblu_agent_peer_transmit_bytes_total{interface="wg-rot",peer="node-b"} 2
# HELP vpblu_agent_peers WireGuard peers configured, by interface.
# TYPE vpblu_agent_peers gauge
vpblu_agent_peers{interface="wg-mesh"} 3
vpblu_agent_peers{interface="wg-rot"} 1
# HELP vpblu_agent_peers_up WireGuard peers with a handshake in the last 180 s, by interface.
# TYPE vpblu_agent_peers_up gauge
vpblu_agent_peers_up{interface="wg-mesh"} 1
vpblu_agent_peers_up{interface="wg-rot"} 1
# HELP vpblu_agent_stream_connected 1 when the stream to the leading controller is up.
# TYPE vpblu_agent_stream_connected gauge
vpblu_agent_stream_connected 1
# HELP vpblu_agent_stream_connects_total Streams established with a controller.
# TYPE vpblu_agent_stream_connects_total counter
vpblu_agent_stream_connects_total 3
# HELP vpblu_agent_verdicts_total Data-plane verdicts, by program and verdict.
# TYPE vpblu_agent_verdicts_total counter
vpblu_agent_verdicts_total{verdict="classify/drop-block"} 7
vpblu_agent_verdicts_total{verdict="classify/steer"} 99
`
	if d := cmp.Diff(strings.TrimLeft(want, "\n"), exposition(t, c)); d != "" {
		t.Errorf("metrics (-want +got):\n%s", d)
	}
}

// exposition renders what a collector exports in the text format.
func exposition(t *testing.T, c prometheus.Collector) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

func TestProbesFollowTheChecks(t *testing.T) {
	var ready, live error
	reg := prometheus.NewRegistry()
	reg.MustRegister(health.NewCollector(health.SourceFunc(func() health.Snapshot { return health.Snapshot{MTU: 1420} }), nil))
	h := health.Handler(health.Options{Ready: func() error { return ready }, Live: func() error { return live }, Gatherer: reg})
	cases := []struct {
		name        string
		ready, live error
		path        string
		code        int
		body        string
	}{
		{"ready", nil, nil, "/readyz", 200, "ok\n"},
		{"not ready says why", errors.New("not ready: stream not connected"), nil, "/readyz", 503, "not ready: stream not connected\n"},
		{"not ready is still live", errors.New("not ready"), nil, "/healthz", 200, "ok\n"},
		{"not live", nil, errors.New("reconcile loop stuck"), "/healthz", 503, "reconcile loop stuck\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ready, live = tc.ready, tc.live
			code, body := get(t, h, tc.path)
			if code != tc.code || body != tc.body {
				t.Errorf("GET %s = %d %q, want %d %q", tc.path, code, body, tc.code, tc.body)
			}
		})
	}
	code, body := get(t, h, "/metrics")
	if code != 200 || !strings.Contains(body, "vpblu_agent_mtu_bytes 1420") {
		t.Errorf("GET /metrics = %d %q", code, body)
	}
}
