package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lumbrjx/vpblu/ctrl/dashboard"
)

// TestKubectlPlugin (§15): `kubectl vpblu` as an operator runs it against
// the live cluster. verify passes on the formed mesh and fails, naming
// the node, while an agent is down; status and graph show every node and
// every tunnel; rotate --wait drives a real key rotation through the
// controller and returns once the node has its new key.
func TestKubectlPlugin(t *testing.T, c Cluster) {
	ensureMesh(t, c)
	waitAgentsConnected(t, c, time.Time{}, 60*time.Second)
	ctx := ctxFor(t, 5*time.Minute)
	nodes := c.Nodes()
	n := len(nodes)
	tunnels := n * (n - 1) / 2
	passed := fmt.Sprintf("passed: %d nodes, %d tunnels", n, tunnels)

	verifyPasses := func(what string) {
		t.Helper()
		eventually(t, 60*time.Second, 200*time.Millisecond, what, func() (bool, string) {
			out, err := c.KubectlVpblu(ctx, "verify")
			return err == nil && strings.Contains(out, passed), fmt.Sprintf("%v\n%s", err, out)
		})
	}
	verifyPasses("kubectl vpblu verify passes on the formed mesh")

	out, err := c.KubectlVpblu(ctx, "status")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubectl vpblu status:\n%s", out)
	for _, node := range nodes {
		row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(node.Name) + `\s.*\s` + fmt.Sprintf("%d/%d", n-1, n-1) + `\s`)
		if !row.MatchString(out) {
			t.Errorf("status shows no row for %s with %d/%d peers up", node.Name, n-1, n-1)
		}
	}
	if !strings.Contains(out, fmt.Sprintf("%d nodes, %d tunnels wanted", n, tunnels)) {
		t.Errorf("status does not count %d nodes and %d tunnels", n, tunnels)
	}

	dot, err := c.KubectlVpblu(ctx, "graph")
	if err != nil {
		t.Fatal(err)
	}
	edges := regexp.MustCompile(`(?m)^\t"[^"]+" -- "[^"]+" \[style=solid`).FindAllString(dot, -1)
	if len(edges) != tunnels || !strings.HasPrefix(dot, "graph vpblu {") {
		t.Errorf("graph has %d solid tunnel edges, want %d:\n%s", len(edges), tunnels, dot)
	}

	// An agent that is down fails verify, which names its node.
	down := nodes[n-1].Name
	if err := c.KillAgent(ctx, down); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), scaled(time.Minute))
		defer cancel()
		_ = c.StartAgent(ctx, down)
	})
	eventually(t, 60*time.Second, 200*time.Millisecond, "kubectl vpblu verify fails while "+down+"'s agent is down", func() (bool, string) {
		out, err := c.KubectlVpblu(ctx, "verify")
		var exit *exec.ExitError
		failed := errors.As(err, &exit) && exit.ExitCode() == 1 && strings.Contains(out, "FAIL node/"+down+": daemon connected")
		return failed, fmt.Sprintf("%v\n%s", err, out)
	})
	if err := c.StartAgent(ctx, down); err != nil {
		t.Fatal(err)
	}
	verifyPasses("kubectl vpblu verify passes once " + down + "'s agent is back")

	// rotate --wait returns once the controller finished the rotation.
	subject := nodes[0].Name
	before := vpbluNodeStatus(t, ctx, c, subject)
	out, err = c.KubectlVpblu(ctx, "rotate", subject, "--wait", "--timeout", scaled(rotationTimeout).String())
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Logf("kubectl vpblu rotate:\n%s", out)
	after := vpbluNodeStatus(t, ctx, c, subject)
	if after.KeyGeneration != before.KeyGeneration+1 || after.PublicKey == before.PublicKey {
		t.Errorf("after rotate --wait %s has key generation %d (key %s), was %d (key %s)", subject, after.KeyGeneration, after.PublicKey, before.KeyGeneration, before.PublicKey)
	}
	if !strings.Contains(out, fmt.Sprintf("rotated to key generation %d", before.KeyGeneration+1)) {
		t.Errorf("rotate did not report the new key generation %d", before.KeyGeneration+1)
	}
	verifyPasses("kubectl vpblu verify passes after the rotation")
}

// TestDashboard (§15, §14): every controller replica serves the web
// dashboard behind a login. Without a session the API answers 401, a
// wrong password is refused; with the password the dashboard shows every
// node healthy and every tunnel, and the leader's shows each end's latest
// handshake from the daemons' live reports.
func TestDashboard(t *testing.T, c Cluster) {
	ensureMesh(t, c)
	waitAgentsConnected(t, c, time.Time{}, 60*time.Second)
	ctx := ctxFor(t, 2*time.Minute)
	urls, password := c.Dashboards()
	n := len(c.Nodes())
	for i, base := range urls {
		t.Run(fmt.Sprintf("replica-%d", i), func(t *testing.T) {
			jar, err := cookiejar.New(nil)
			if err != nil {
				t.Fatal(err)
			}
			hc := &http.Client{Jar: jar, Timeout: scaled(10 * time.Second)}
			get := func(path string) (*http.Response, []byte) {
				t.Helper()
				req, err := http.NewRequestWithContext(ctx, "GET", base+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				res, err := hc.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				body, err := io.ReadAll(res.Body)
				if err != nil {
					t.Fatal(err)
				}
				return res, body
			}
			if res, _ := get("/api/mesh"); res.StatusCode != http.StatusUnauthorized {
				t.Errorf("/api/mesh without a session: %s, want 401", res.Status)
			}
			res, err := hc.PostForm(base+"/login", url.Values{"password": {"not the password"}})
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusUnauthorized {
				t.Errorf("a wrong password: %s, want 401", res.Status)
			}
			res, err = hc.PostForm(base+"/login", url.Values{"password": {password}})
			if err != nil {
				t.Fatal(err)
			}
			page, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK || !strings.Contains(string(page), `<script src="/app.js">`) {
				t.Fatalf("login, then the page: %s\n%s", res.Status, page)
			}

			eventually(t, 30*time.Second, 500*time.Millisecond, "the dashboard shows the whole mesh", func() (bool, string) {
				leader, err := c.Leader(ctx)
				if err != nil {
					return false, err.Error()
				}
				res, body := get("/api/mesh")
				if res.StatusCode != http.StatusOK {
					return false, res.Status + ": " + string(body)
				}
				var v dashboard.View
				if err := json.Unmarshal(body, &v); err != nil {
					return false, err.Error()
				}
				healthy := 0
				for _, node := range v.Nodes {
					if node.Healthy {
						healthy++
					}
				}
				if healthy != n || len(v.Tunnels) != n*(n-1)/2 || len(v.Failures) != 0 {
					return false, fmt.Sprintf("%d of %d nodes healthy, %d tunnels, failures %v", healthy, n, len(v.Tunnels), v.Failures)
				}
				if i != leader {
					return true, ""
				}
				// The leader holds the daemons' streams: live handshakes.
				for _, tun := range v.Tunnels {
					if !v.Live || tun.HandshakeA < 0 || tun.HandshakeA > 180 || tun.HandshakeB < 0 || tun.HandshakeB > 180 {
						return false, fmt.Sprintf("live %v, tunnel %+v", v.Live, tun)
					}
				}
				return true, ""
			})
		})
	}
}
