package health

import (
	"math"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	descInfo      = prometheus.NewDesc("vpblu_agent_info", "The daemon's WireGuard backend (value is always 1).", []string{"backend"}, nil)
	descMTU       = prometheus.NewDesc("vpblu_agent_mtu_bytes", "MTU of the WireGuard interface.", nil, nil)
	descPeers     = prometheus.NewDesc("vpblu_agent_peers", "WireGuard peers configured, by interface.", []string{"interface"}, nil)
	descPeersUp   = prometheus.NewDesc("vpblu_agent_peers_up", "WireGuard peers with a handshake in the last 180 s, by interface.", []string{"interface"}, nil)
	descHandshake = prometheus.NewDesc("vpblu_agent_peer_handshake_age_seconds", "Seconds since the last completed handshake with a peer (+Inf: never).", []string{"interface", "peer"}, nil)
	descRx        = prometheus.NewDesc("vpblu_agent_peer_receive_bytes_total", "Bytes received from a peer by the WireGuard interface.", []string{"interface", "peer"}, nil)
	descTx        = prometheus.NewDesc("vpblu_agent_peer_transmit_bytes_total", "Bytes sent to a peer by the WireGuard interface.", []string{"interface", "peer"}, nil)
	descConnected = prometheus.NewDesc("vpblu_agent_stream_connected", "1 when the stream to the leading controller is up.", nil, nil)
	descConnects  = prometheus.NewDesc("vpblu_agent_stream_connects_total", "Streams established with a controller.", nil, nil)
	descEpoch     = prometheus.NewDesc("vpblu_agent_applied_generation_epoch", "Epoch of the generation of the running state.", nil, nil)
	descSeq       = prometheus.NewDesc("vpblu_agent_applied_generation_seq", "Sequence of the generation of the running state.", nil, nil)
	descAcks      = prometheus.NewDesc("vpblu_agent_acks_total", "Acks sent to the controller, by code.", []string{"code"}, nil)
	descVerdicts  = prometheus.NewDesc("vpblu_agent_verdicts_total", "Data-plane verdicts, by program and verdict.", []string{"verdict"}, nil)
)

// Collector exports a Source as Prometheus metrics.
type Collector struct {
	src Source
	now func() time.Time
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a collector reading src at every scrape; now is
// the clock (time.Now when nil).
func NewCollector(src Source, now func() time.Time) *Collector {
	if now == nil {
		now = time.Now
	}
	return &Collector{src: src, now: now}
}

// Describe implements prometheus.Collector.
func (*Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInfo, descMTU, descPeers, descPeersUp, descHandshake, descRx, descTx,
		descConnected, descConnects, descEpoch, descSeq, descAcks, descVerdicts} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Snapshot()
	now := c.now()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	if s.Backend != "" {
		gauge(descInfo, 1, s.Backend)
	}
	gauge(descMTU, float64(s.MTU))
	total, up := map[string]int{}, map[string]int{}
	for _, p := range s.Peers {
		total[p.Interface]++
		age := math.Inf(1)
		if !p.LastHandshake.IsZero() {
			age = max(now.Sub(p.LastHandshake).Seconds(), 0)
			if age < HandshakeUp.Seconds() {
				up[p.Interface]++
			}
		}
		gauge(descHandshake, age, p.Interface, p.Node)
		counter(descRx, float64(p.RxBytes), p.Interface, p.Node)
		counter(descTx, float64(p.TxBytes), p.Interface, p.Node)
	}
	for _, ifc := range sortedKeys(total) {
		gauge(descPeers, float64(total[ifc]), ifc)
		gauge(descPeersUp, float64(up[ifc]), ifc)
	}
	connected := 0.0
	if s.Stream.Connected {
		connected = 1
	}
	gauge(descConnected, connected)
	counter(descConnects, float64(s.Stream.Connects))
	gauge(descEpoch, float64(s.Stream.AppliedEpoch))
	gauge(descSeq, float64(s.Stream.AppliedSeq))
	for _, code := range sortedKeys(s.Stream.Acks) {
		counter(descAcks, float64(s.Stream.Acks[code]), code)
	}
	for _, v := range sortedKeys(s.Verdicts) {
		counter(descVerdicts, float64(s.Verdicts[v]), v)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
