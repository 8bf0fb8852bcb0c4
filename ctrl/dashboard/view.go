package dashboard

import (
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/ctrl/meshview"
)

// View is what the page shows, as JSON (GET /api/mesh).
type View struct {
	Time      time.Time  `json:"time"`
	Nodes     []NodeView `json:"nodes"`
	Tunnels   []Tunnel   `json:"tunnels"`
	Policies  []Policy   `json:"policies"`
	Rotations []Rotation `json:"rotations"`
	Problems  []string   `json:"problems"`
	// Checks are kubectl vpblu verify's: how many, and those that fail.
	Checks   int      `json:"checks"`
	Failures []string `json:"failures"`
	// Live is false on a standby controller, which has no daemon reports
	// (handshakes and drops come from the leader's streams).
	Live bool `json:"live"`
}

// NodeView is one node.
type NodeView struct {
	Name          string `json:"name"`
	Endpoint      string `json:"endpoint"`
	Backend       string `json:"backend"`
	PeersUp       int32  `json:"peersUp"`
	PeersWanted   int    `json:"peersWanted"`
	KeyGeneration int64  `json:"keyGeneration"`
	RotationPhase string `json:"rotationPhase"`
	Connected     bool   `json:"connected"`
	Ready         bool   `json:"ready"`
	Healthy       bool   `json:"healthy"`
	// LastSeen is how long ago the daemon last reported, in seconds (-1:
	// never).
	LastSeen float64 `json:"lastSeenSeconds"`
	Note     string  `json:"note"`
	// Drops counts packets the node's data plane dropped, by verdict
	// (e.g. "classify/drop-block"), from its last report.
	Drops map[string]uint64 `json:"drops"`
}

// Tunnel is a wanted node pair with what each end last reported of it.
type Tunnel struct {
	A       string `json:"a"`
	B       string `json:"b"`
	Healthy bool   `json:"healthy"`
	// HandshakeA and HandshakeB are the seconds since each end's last
	// handshake with the other (-1: none reported).
	HandshakeA float64 `json:"handshakeA"`
	HandshakeB float64 `json:"handshakeB"`
	// Bytes moved, as A counts them.
	RxBytes uint64 `json:"rxBytes"`
	TxBytes uint64 `json:"txBytes"`
}

// Policy is a Tunnel, Route or Block policy.
type Policy struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Applied int32  `json:"applied"`
	Nodes   int32  `json:"nodes"`
	Ready   bool   `json:"ready"`
	Message string `json:"message"`
}

// Rotation is a RotationPolicy.
type Rotation struct {
	Name     string `json:"name"`
	Schedule string `json:"schedule"`
	Suspend  bool   `json:"suspend"`
	LastRun  string `json:"lastRun"`
	NextRun  string `json:"nextRun"`
	Node     string `json:"node"`
	Phase    string `json:"phase"`
}

// Reports returns the last tunnel status a node's daemon sent the leader
// (nil when there is none, and always on a standby).
type Reports func(node string) *meshpb.TunnelStatus

// NewView builds the page's view of m, with each node's last report.
func NewView(m *meshview.Mesh, reports Reports) View {
	v := View{Time: m.Now, Problems: m.Problems}
	// Per node: its last report's peers by name, and whether it is healthy,
	// so each tunnel is looked up, not searched for.
	peers := map[string]map[string]*meshpb.PeerStatus{}
	healthy := map[string]bool{}
	for _, n := range m.Nodes {
		healthy[n.Name] = n.Healthy()
		var s *meshpb.TunnelStatus
		if reports != nil {
			if s = reports(n.Name); s != nil {
				peers[n.Name] = latestPeers(s)
				v.Live = true
			}
		}
		st := n.Status()
		nv := NodeView{
			Name: n.Name, Endpoint: st.Endpoint, Backend: string(st.Backend), PeersUp: st.PeersUp, PeersWanted: len(n.WantPeers),
			KeyGeneration: st.KeyGeneration, RotationPhase: string(st.RotationPhase), Healthy: healthy[n.Name], Note: n.Note(),
			Connected: meta.IsStatusConditionTrue(st.Conditions, v1alpha1.ConditionConnected), Ready: meta.IsStatusConditionTrue(st.Conditions, v1alpha1.ConditionReady),
			LastSeen: -1, Drops: map[string]uint64{},
		}
		if st.LastSeen != nil {
			nv.LastSeen = m.Now.Sub(st.LastSeen.Time).Seconds()
		}
		for verdict, count := range s.GetVerdicts() {
			if strings.Contains(verdict, "drop") {
				nv.Drops[verdict] = count
			}
		}
		v.Nodes = append(v.Nodes, nv)
	}
	for _, t := range m.Tunnels {
		tv := Tunnel{A: t.A, B: t.B, HandshakeA: -1, HandshakeB: -1, Healthy: healthy[t.A] && healthy[t.B]}
		if p := peers[t.A][t.B]; p != nil {
			tv.HandshakeA = handshakeAge(m.Now, p)
			tv.RxBytes, tv.TxBytes = p.GetRxBytes(), p.GetTxBytes()
		}
		if p := peers[t.B][t.A]; p != nil {
			tv.HandshakeB = handshakeAge(m.Now, p)
		}
		v.Tunnels = append(v.Tunnels, tv)
	}
	for _, p := range m.Policies {
		pv := Policy{Kind: p.Kind, Name: p.Name, Applied: p.NodesApplied, Nodes: p.Nodes}
		if c := meta.FindStatusCondition(p.Conditions, v1alpha1.ConditionReady); c != nil {
			pv.Ready, pv.Message = c.Status == metav1.ConditionTrue, c.Message
		}
		v.Policies = append(v.Policies, pv)
	}
	for _, r := range m.Rotations {
		rv := Rotation{Name: r.Name, Schedule: string(r.Spec.Schedule), Suspend: r.Spec.Suspend, Node: r.Status.CurrentNode, Phase: string(r.Status.Phase)}
		if r.Status.LastRun != nil {
			rv.LastRun = r.Status.LastRun.UTC().Format(time.RFC3339)
		}
		if r.Status.NextRun != nil {
			rv.NextRun = r.Status.NextRun.UTC().Format(time.RFC3339)
		}
		v.Rotations = append(v.Rotations, rv)
	}
	checks := meshview.Verify(m)
	v.Checks = len(checks)
	for _, c := range checks {
		if !c.OK {
			v.Failures = append(v.Failures, c.String())
		}
	}
	return v
}

// latestPeers indexes a report's peers by node; while a rotation runs a
// second interface a node is listed twice, and the more recent handshake
// counts.
func latestPeers(s *meshpb.TunnelStatus) map[string]*meshpb.PeerStatus {
	out := make(map[string]*meshpb.PeerStatus, len(s.GetPeers()))
	for _, p := range s.GetPeers() {
		if old, ok := out[p.GetNode()]; !ok || p.GetLastHandshakeUnixNano() > old.GetLastHandshakeUnixNano() {
			out[p.GetNode()] = p
		}
	}
	return out
}

func handshakeAge(now time.Time, p *meshpb.PeerStatus) float64 {
	if p.GetLastHandshakeUnixNano() == 0 {
		return -1
	}
	return max(now.Sub(time.Unix(0, p.GetLastHandshakeUnixNano())).Seconds(), 0)
}
