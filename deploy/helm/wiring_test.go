package helm_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/utils/ptr"

	"github.com/lumbrjx/vpblu/deploy/helm"
)

// Names the binaries and SPEC §7.3 fix.
const (
	controllerName = "vpblu-controller"
	agentName      = "vpblu-agent"
	agentAudience  = "vpblu.io/agent"
)

// check is one rule with what the chart renders and what the rule wants.
type check struct {
	rule      string
	got, want any
}

func runChecks(t *testing.T, checks []check) {
	t.Helper()
	for _, c := range checks {
		if diff := cmp.Diff(c.want, c.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.rule, diff)
		}
	}
}

// The agent authenticates with a projected token of audience
// vpblu.io/agent that the kubelet rotates (SPEC §7.3), from the path its
// --token-file names.
func TestAgentMountsProjectedToken(t *testing.T) {
	for _, tc := range renderCases {
		t.Run(tc.name, func(t *testing.T) {
			r := render(t, tc.values)
			ds := one[*appsv1.DaemonSet](t, r, agentName)
			pod := ds.Spec.Template.Spec
			var tokens []corev1.ServiceAccountTokenProjection
			var tokenVolume string
			for _, v := range pod.Volumes {
				if v.Projected == nil {
					continue
				}
				for _, s := range v.Projected.Sources {
					if s.ServiceAccountToken != nil {
						tokens = append(tokens, *s.ServiceAccountToken)
						tokenVolume = v.Name
					}
				}
			}
			tokenFile, _ := flagValue(agentContainer(t, ds).Args, "token-file")
			runChecks(t, []check{
				{"one projected token, audience vpblu.io/agent, valid an hour, file token",
					tokens, []corev1.ServiceAccountTokenProjection{{Audience: agentAudience, ExpirationSeconds: ptr.To[int64](3600), Path: "token"}}},
				{"--token-file is the projected token", mountedAt(agentContainer(t, ds), tokenVolume, "token"), tokenFile},
				{"no API token is mounted (the daemon has no RBAC)", pod.AutomountServiceAccountToken, ptr.To(false)},
				{"the pod runs as the agent ServiceAccount", pod.ServiceAccountName, agentName},
			})
		})
	}
}

// The controller and the agents agree on every name and port that joins
// them: the Service the agents dial is in the serving certificate, the
// CA bundle they mount is the one the controller publishes, and the
// accounts and audience the controller accepts are the agents'.
func TestControllerAndAgentsAreWiredTogether(t *testing.T) {
	for _, tc := range renderCases {
		t.Run(tc.name, func(t *testing.T) {
			r := render(t, tc.values)
			const ns = helm.DefaultNamespace
			dep := one[*appsv1.Deployment](t, r, controllerName)
			ds := one[*appsv1.DaemonSet](t, r, agentName)
			svc := one[*corev1.Service](t, r, controllerName)
			role := one[*rbacv1.Role](t, r, controllerName)
			ctl, agent := controllerContainer(t, dep), agentContainer(t, ds)
			cf := func(name string) string { v, _ := flagValue(ctl.Args, name); return v }
			af := func(name string) string { v, _ := flagValue(agent.Args, name); return v }

			dialHost, dialPort, err := net.SplitHostPort(af("controllers"))
			if err != nil {
				t.Fatalf("--controllers: %v", err)
			}
			_, streamPort, _ := net.SplitHostPort(cf("stream-addr"))
			var svcPort corev1.ServicePort
			for _, p := range svc.Spec.Ports {
				if strconv.Itoa(int(p.Port)) == dialPort {
					svcPort = p
				}
			}
			var caConfigMap string
			for _, v := range ds.Spec.Template.Spec.Volumes {
				if v.ConfigMap != nil {
					caConfigMap = v.ConfigMap.Name
				}
			}
			var tokenAudience string
			for _, v := range ds.Spec.Template.Spec.Volumes {
				if v.Projected != nil && v.Projected.Sources[0].ServiceAccountToken != nil {
					tokenAudience = v.Projected.Sources[0].ServiceAccountToken.Audience
				}
			}
			_, healthPort, _ := net.SplitHostPort(cf("health-addr"))
			_, agentHealthPort, _ := net.SplitHostPort(af("health-addr"))

			runChecks(t, []check{
				{"the agents dial the controllers' Service", dialHost, controllerName + "." + ns + ".svc"},
				{"the name the agents dial is a SAN of the serving certificate",
					slices.Contains(strings.Split(cf("tls-dns-names"), ","), dialHost), true},
				{"the Service port the agents dial reaches the stream port",
					svcPort.TargetPort.String() + "=" + strconv.Itoa(int(containerPort(ctl, svcPort.TargetPort.String()))), "stream=" + streamPort},
				{"the Service selects the controller pods", svc.Spec.Selector, dep.Spec.Selector.MatchLabels},
				{"the Service does not pin a daemon to one replica", svc.Spec.SessionAffinity, corev1.ServiceAffinityNone},
				{"the agents mount the CA bundle the controller publishes", caConfigMap, cf("ca-configmap")},
				{"--ca-file is in the CA bundle", mountedAt(agent, volumeOfConfigMap(ds, caConfigMap), "ca.crt"), af("ca-file")},
				{"the controller accepts the agents' token audience", cf("agent-audience"), tokenAudience},
				{"the controller accepts the agents' ServiceAccount", cf("agent-service-accounts"), ns + ":" + ds.Spec.Template.Spec.ServiceAccountName},
				{"the controller keeps its Lease and CA in the release namespace", cf("namespace"), ns},
				{"the Role names the controller's Lease", ruleNames(role, "leases"), []string{cf("leader-election-id")}},
				{"the Role names the controller's CA Secret", ruleNames(role, "secrets"), []string{cf("ca-secret")}},
				{"the Role names the controller's CA ConfigMap", ruleNames(role, "configmaps"), []string{cf("ca-configmap")}},
				{"controller and agents drop the same cluster CIDRs", af("cluster-cidrs"), cf("cluster-cidrs")},
				{"the controller's probes hit its health address", probePorts(ctl), []string{healthPort, healthPort}},
				{"the agent's probes hit its health address", probePorts(agent), []string{agentHealthPort, agentHealthPort}},
				{"leader election is on", cf("leader-elect"), "true"},
				{"the pin directory is on the mounted bpffs", path.Dir(af("bpf-pin-dir")), mountPathOf(agent, "bpffs")},
				{"the state directory is the host's /var/lib/vpblu", mountPathOf(agent, "state") + "<-" + hostPathOf(ds, "state"), af("state-dir") + "<-/var/lib/vpblu"},
			})
		})
	}
}

// The agent sits on the host network of every node, whatever its taints,
// and knows its node from the downward API (SPEC §9, §10).
func TestAgentDaemonSet(t *testing.T) {
	for _, tc := range renderCases {
		t.Run(tc.name, func(t *testing.T) {
			r := render(t, tc.values)
			ds := one[*appsv1.DaemonSet](t, r, agentName)
			pod := ds.Spec.Template.Spec
			c := agentContainer(t, ds)
			env := map[string]string{}
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
					env[e.Name] = e.ValueFrom.FieldRef.FieldPath
				}
			}
			privileged := c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged
			var caps []corev1.Capability
			if c.SecurityContext.Capabilities != nil {
				caps = c.SecurityContext.Capabilities.Add
			}
			var propagation corev1.MountPropagationMode
			for _, m := range c.VolumeMounts {
				if m.Name == "bpffs" && m.MountPropagation != nil {
					propagation = *m.MountPropagation
				}
			}
			wantCaps, wantPropagation := []corev1.Capability(nil), corev1.MountPropagationBidirectional
			if !privileged {
				wantCaps = []corev1.Capability{"NET_ADMIN", "NET_RAW", "BPF", "PERFMON", "SYS_ADMIN"}
				wantPropagation = corev1.MountPropagationHostToContainer
			}
			runChecks(t, []check{
				{"host network", pod.HostNetwork, true},
				{"cluster DNS from the host network", pod.DNSPolicy, corev1.DNSClusterFirstWithHostNet},
				{"tolerates every taint", slices.ContainsFunc(pod.Tolerations, func(t corev1.Toleration) bool {
					return t.Key == "" && t.Operator == corev1.TolerationOpExists && t.Effect == ""
				}), true},
				{"node-critical priority", pod.PriorityClassName, "system-node-critical"},
				{"rolls one node at a time", ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable.String(), "1"},
				{"node name and IP from the downward API", env, map[string]string{"NODE_NAME": "spec.nodeName", "NODE_IP": "status.hostIP"}},
				{"privileged, or exactly the capabilities it needs", caps, wantCaps},
				{"bpffs pins reach the host when privileged", propagation, wantPropagation},
				{"runs as root", *c.SecurityContext.RunAsUser, int64(0)},
				{"read-only root file system", *c.SecurityContext.ReadOnlyRootFilesystem, true},
				{"host paths", map[string]string{
					"bpffs": hostPathOf(ds, "bpffs"), "state": hostPathOf(ds, "state"),
					"wireguard-sockets": hostPathOf(ds, "wireguard-sockets"), "modules": hostPathOf(ds, "modules"),
				}, map[string]string{
					"bpffs": "/sys/fs/bpf", "state": "/var/lib/vpblu",
					"wireguard-sockets": "/run/wireguard", "modules": "/lib/modules",
				}},
				{"userspace WireGuard's sockets are where wg show looks", mountPathOf(c, "wireguard-sockets"), "/var/run/wireguard"},
				{"kernel modules are read-only", readOnly(c, "modules"), true},
			})
		})
	}
}

// Two hardened replicas that prefer different nodes (SPEC §6).
func TestControllerDeployment(t *testing.T) {
	r := render(t, "")
	dep := one[*appsv1.Deployment](t, r, controllerName)
	pod := dep.Spec.Template.Spec
	c := controllerContainer(t, dep)
	aa := pod.Affinity.PodAntiAffinity
	runChecks(t, []check{
		{"two replicas", *dep.Spec.Replicas, int32(2)},
		{"non-root", *pod.SecurityContext.RunAsNonRoot, true},
		{"the image's uid", *pod.SecurityContext.RunAsUser, int64(65532)},
		{"read-only root file system", *c.SecurityContext.ReadOnlyRootFilesystem, true},
		{"no privilege escalation", *c.SecurityContext.AllowPrivilegeEscalation, false},
		{"drops every capability", c.SecurityContext.Capabilities.Drop, []corev1.Capability{"ALL"}},
		{"requests and limits set", len(c.Resources.Requests) > 0 && len(c.Resources.Limits) > 0, true},
		{"replicas prefer different nodes", aa != nil && len(aa.PreferredDuringSchedulingIgnoredDuringExecution) == 1 &&
			aa.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.TopologyKey == "kubernetes.io/hostname", true},
		{"the anti-affinity selects its own replicas",
			aa.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.LabelSelector.MatchLabels, dep.Spec.Selector.MatchLabels},
	})
}

// RBAC holds no wildcard, and nothing binds the agents' ServiceAccount
// (SPEC §7.3, §14).
func TestRBACIsExplicitAndAgentUnbound(t *testing.T) {
	for _, tc := range renderCases {
		t.Run(tc.name, func(t *testing.T) {
			r := render(t, tc.values)
			var rules []rbacv1.PolicyRule
			for _, cr := range all[*rbacv1.ClusterRole](r) {
				rules = append(rules, cr.Rules...)
				if cr.AggregationRule != nil {
					t.Errorf("ClusterRole %s aggregates other roles", cr.Name)
				}
			}
			for _, ro := range all[*rbacv1.Role](r) {
				rules = append(rules, ro.Rules...)
			}
			if len(rules) == 0 {
				t.Fatal("no RBAC rules rendered")
			}
			for _, rule := range rules {
				for _, field := range [][]string{rule.Verbs, rule.APIGroups, rule.Resources, rule.ResourceNames} {
					for _, v := range field {
						if v == "*" || strings.HasSuffix(v, "/*") {
							t.Errorf("wildcard %q in rule %+v", v, rule)
						}
					}
				}
				if len(rule.NonResourceURLs) > 0 {
					t.Errorf("non-resource URLs in rule %+v", rule)
				}
				if len(rule.Verbs) == 0 || len(rule.Resources) == 0 {
					t.Errorf("rule without verbs or resources: %+v", rule)
				}
			}

			var subjects []rbacv1.Subject
			for _, b := range all[*rbacv1.ClusterRoleBinding](r) {
				subjects = append(subjects, b.Subjects...)
			}
			for _, b := range all[*rbacv1.RoleBinding](r) {
				subjects = append(subjects, b.Subjects...)
			}
			for _, s := range subjects {
				if s.Kind != rbacv1.ServiceAccountKind || s.Name != controllerName || s.Namespace != helm.DefaultNamespace {
					t.Errorf("a binding grants to %s %s/%s; only the controller's ServiceAccount may be bound", s.Kind, s.Namespace, s.Name)
				}
			}
		})
	}
}

// Every flag the chart passes is one the binary declares: a renamed flag
// would crash-loop the pods.
func TestChartPassesOnlyDeclaredFlags(t *testing.T) {
	declared := map[string][]string{
		"controller": declaredFlags(t, filepath.Join("..", "..", "cmd", "vpblu-controller", "main.go")),
		"agent":      declaredFlags(t, filepath.Join("..", "..", "cmd", "vpblu-agent", "main.go")),
	}
	for _, tc := range renderCases {
		t.Run(tc.name, func(t *testing.T) {
			r := render(t, tc.values)
			passed := map[string][]string{
				"controller": controllerContainer(t, one[*appsv1.Deployment](t, r, controllerName)).Args,
				"agent":      agentContainer(t, one[*appsv1.DaemonSet](t, r, agentName)).Args,
			}
			for bin, args := range passed {
				for _, a := range args {
					name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
					if !strings.HasPrefix(a, "--") || !slices.Contains(declared[bin], name) {
						t.Errorf("the %s gets %q, which cmd/vpblu-%s does not declare", bin, a, bin)
					}
				}
			}
		})
	}
}

// declaredFlags lists the flag names a main.go registers with the flag
// package: fs.XxxVar(&v, "name", ...) and fs.Xxx("name", ...).
func declaredFlags(t *testing.T, file string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatalf("parsing %s: %v", file, err)
	}
	var names []string
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		arg := -1
		switch sel.Sel.Name {
		case "StringVar", "BoolVar", "IntVar", "Int64Var", "UintVar", "Uint64Var", "Float64Var", "DurationVar", "TextVar", "Var":
			arg = 1
		case "String", "Bool", "Int", "Int64", "Uint", "Uint64", "Float64", "Duration", "Func", "BoolFunc":
			arg = 0
		}
		if arg < 0 || len(call.Args) <= arg {
			return true
		}
		if lit, ok := call.Args[arg].(*ast.BasicLit); ok && lit.Kind == token.STRING {
			if s, err := strconv.Unquote(lit.Value); err == nil {
				names = append(names, s)
			}
		}
		return true
	})
	if len(names) == 0 {
		t.Fatalf("no flags found in %s", file)
	}
	return names
}

func controllerContainer(t *testing.T, d *appsv1.Deployment) corev1.Container {
	t.Helper()
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("controller pod has %d containers", len(d.Spec.Template.Spec.Containers))
	}
	return d.Spec.Template.Spec.Containers[0]
}

func agentContainer(t *testing.T, ds *appsv1.DaemonSet) corev1.Container {
	t.Helper()
	if len(ds.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("agent pod has %d containers", len(ds.Spec.Template.Spec.Containers))
	}
	return ds.Spec.Template.Spec.Containers[0]
}

// mountedAt is the path of file inside volume in c, "" when not mounted.
func mountedAt(c corev1.Container, volume, file string) string {
	if p := mountPathOf(c, volume); p != "" {
		return path.Join(p, file)
	}
	return ""
}

func mountPathOf(c corev1.Container, volume string) string {
	for _, m := range c.VolumeMounts {
		if m.Name == volume {
			return m.MountPath
		}
	}
	return ""
}

func readOnly(c corev1.Container, volume string) bool {
	for _, m := range c.VolumeMounts {
		if m.Name == volume {
			return m.ReadOnly
		}
	}
	return false
}

func hostPathOf(ds *appsv1.DaemonSet, volume string) string {
	for _, v := range ds.Spec.Template.Spec.Volumes {
		if v.Name == volume && v.HostPath != nil {
			return v.HostPath.Path
		}
	}
	return ""
}

func volumeOfConfigMap(ds *appsv1.DaemonSet, name string) string {
	for _, v := range ds.Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == name {
			return v.Name
		}
	}
	return ""
}

func containerPort(c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// probePorts are the container ports the liveness and readiness probes
// use.
func probePorts(c corev1.Container) []string {
	var out []string
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil {
			out = append(out, "")
			continue
		}
		port := p.HTTPGet.Port.String()
		if n := containerPort(c, port); n != 0 {
			port = strconv.Itoa(int(n))
		}
		out = append(out, port)
	}
	return out
}

// ruleNames are the resourceNames of role's rules on resource.
func ruleNames(role *rbacv1.Role, resource string) []string {
	var out []string
	for _, r := range role.Rules {
		if slices.Contains(r.Resources, resource) {
			out = append(out, r.ResourceNames...)
		}
	}
	return out
}
