package e2e

import "testing"

// Criterion is one acceptance criterion of SPEC §12.
type Criterion struct {
	// Name is the subtest name: "12.N-short-name", so runners can select
	// subsets with -run.
	Name string
	Test func(t *testing.T, c Cluster)
}

// Criteria lists the suite in the order it runs. Each test brings the
// cluster to the state it needs (the mesh formed) and leaves it usable
// for the next, so any subset can run alone.
var Criteria = []Criterion{
	{"12.1-deploy", TestDeploy},
	{"12.2-fullmesh", TestFullMesh},
	{"12.3-underlay-only-wireguard", TestUnderlayOnlyWireGuard},
	{"12.4-block", TestBlockPolicy},
	{"12.5-node-join-and-delete", TestNodeJoinAndDelete},
	{"12.6-key-rotation", TestKeyRotation},
	{"12.7-controller-down", TestControllerDown},
	{"12.8-large-packets", TestLargePackets},
	{"12.10-agent-restart", TestAgentRestart},
	{"12.11-leader-failover", TestLeaderFailover},
	{"12.12-strict-startup", TestStrictStartup},
	{"12.13-stream-auth", TestStreamAuth},
	{"12.15-bad-input", TestBadInput},
	{"15-kubectl-vpblu", TestKubectlPlugin},
	{"15-dashboard", TestDashboard},
}

// Run runs every criterion against c as subtests and returns the names
// of those that failed, for a runner to repeat after its logs.
func Run(t *testing.T, c Cluster) (failed []string) {
	for _, cr := range Criteria {
		if !t.Run(cr.Name, func(t *testing.T) { cr.Test(t, c) }) {
			failed = append(failed, cr.Name)
		}
	}
	return failed
}
