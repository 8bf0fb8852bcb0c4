package dashboard

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/ctrl/meshview"
)

const password = "correct horse battery staple"

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func hash(t testing.TB, pw string) []byte {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// twoNodes is a mesh of a and b, both ready with their tunnel up.
func twoNodes(now time.Time) *meshview.Mesh {
	node := func(name string) meshview.Node {
		return meshview.Node{
			Name: name, HasNode: true, WantPeers: map[string][]string{"a": {"b"}, "b": {"a"}}[name],
			Want: desired.NodeStatus{Selected: true, Member: true, Peers: 1},
			VpbluNode: &v1alpha1.VpbluNode{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: v1alpha1.VpbluNodeStatus{
				PublicKey: "k", KeyGeneration: 3, PeersUp: 1, PeersTotal: 1, Endpoint: name + ":51820", Backend: v1alpha1.BackendKernel,
				LastSeen: &metav1.Time{Time: now.Add(-5 * time.Second)},
				Conditions: []metav1.Condition{
					{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue},
					{Type: v1alpha1.ConditionConnected, Status: metav1.ConditionTrue},
				},
			}},
		}
	}
	return &meshview.Mesh{Now: now, Nodes: []meshview.Node{node("a"), node("b")}, Tunnels: []meshview.Tunnel{{A: "a", B: "b"}}}
}

type fixture struct {
	srv   *Server
	clock *clock
	loads atomic.Int32
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{clock: &clock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}}
	srv, err := New(Options{
		PasswordHash: hash(t, password),
		Load: func(context.Context) (*meshview.Mesh, error) {
			f.loads.Add(1)
			return twoNodes(f.clock.now()), nil
		},
		Reports: func(node string) *meshpb.TunnelStatus {
			peer := map[string]string{"a": "b", "b": "a"}[node]
			return &meshpb.TunnelStatus{
				Peers:    []*meshpb.PeerStatus{{Node: peer, LastHandshakeUnixNano: f.clock.now().Add(-7 * time.Second).UnixNano(), RxBytes: 2048, TxBytes: 4096}},
				Verdicts: map[string]uint64{"classify/steer": 100, "classify/drop-block": 4},
			}
		},
		Now: f.clock.now,
		Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	return f
}

// do sends one request from addr (host:port) with an optional session.
func (f *fixture) do(method, path, addr string, form url.Values, session *http.Cookie) *http.Response {
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	r := httptest.NewRequest(method, path, body)
	r.RemoteAddr = addr
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if session != nil {
		r.AddCookie(session)
	}
	w := httptest.NewRecorder()
	f.srv.ServeHTTP(w, r)
	return w.Result()
}

func (f *fixture) login(t *testing.T, addr string) *http.Cookie {
	t.Helper()
	res := f.do("POST", "/login", addr, url.Values{"password": {password}}, nil)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %s", res.Status)
	}
	for _, c := range res.Cookies() {
		if c.Name == CookieName {
			return c
		}
	}
	t.Fatal("login set no session cookie")
	return nil
}

func TestEverythingButTheLoginNeedsASession(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		method, path string
		want         int
		location     string
	}{
		{"GET", "/", http.StatusSeeOther, "/login"},
		{"GET", "/api/mesh", http.StatusUnauthorized, ""},
		{"GET", "/app.js", http.StatusUnauthorized, ""},
		{"GET", "/login", http.StatusOK, ""},
		{"GET", "/style.css", http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			res := f.do(tt.method, tt.path, "198.51.100.1:1000", nil, nil)
			if res.StatusCode != tt.want || res.Header.Get("Location") != tt.location {
				t.Errorf("%s, Location %q; want %d, %q", res.Status, res.Header.Get("Location"), tt.want, tt.location)
			}
			for h, want := range map[string]string{"X-Frame-Options": "DENY", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"} {
				if got := res.Header.Get(h); got != want {
					t.Errorf("%s: %q, want %q", h, got, want)
				}
			}
			if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
				t.Errorf("Content-Security-Policy %q", csp)
			}
		})
	}
	if f.loads.Load() != 0 {
		t.Errorf("the cluster was read %d times without a session", f.loads.Load())
	}
}

func TestLoginSetsAStrictHttpOnlySessionCookie(t *testing.T) {
	f := newFixture(t)
	res := f.do("POST", "/login", "198.51.100.1:1000", url.Values{"password": {"wrong"}}, nil)
	if res.StatusCode != http.StatusUnauthorized || len(res.Cookies()) != 0 {
		t.Errorf("wrong password: %s with cookies %v, want 401 and none", res.Status, res.Cookies())
	}

	c := f.login(t, "198.51.100.1:1000")
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure || len(c.Value) < 40 {
		t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/, a long random value, not Secure over plain HTTP", c)
	}
	if res := f.do("GET", "/", "198.51.100.1:1000", nil, c); res.StatusCode != http.StatusOK {
		t.Errorf("the page with a session: %s", res.Status)
	}

	// Over TLS the cookie is Secure too.
	r := httptest.NewRequest("POST", "/login", strings.NewReader(url.Values{"password": {password}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.RemoteAddr, r.TLS = "198.51.100.2:1000", &tls.ConnectionState{}
	w := httptest.NewRecorder()
	f.srv.ServeHTTP(w, r)
	if cs := w.Result().Cookies(); len(cs) != 1 || !cs[0].Secure {
		t.Errorf("cookies over TLS %+v, want one Secure cookie", cs)
	}
}

func TestLoginAttemptsAreRateLimitedPerClient(t *testing.T) {
	f := newFixture(t)
	for i := range DefaultLoginBurst {
		if res := f.do("POST", "/login", "198.51.100.1:1000", url.Values{"password": {"guess"}}, nil); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %s, want 401", i+1, res.Status)
		}
	}
	// Past the burst even the right password waits, from any port.
	res := f.do("POST", "/login", "198.51.100.1:2000", url.Values{"password": {password}}, nil)
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" || len(res.Cookies()) != 0 {
		t.Errorf("attempt past the burst: %s, Retry-After %q, cookies %v; want 429 and no session", res.Status, res.Header.Get("Retry-After"), res.Cookies())
	}
	// Another client is not held up; the first may try again later.
	f.login(t, "198.51.100.9:1000")
	f.clock.advance(DefaultLoginEvery)
	f.login(t, "198.51.100.1:1000")
}

func TestSessionsEndAtLogoutAndExpiry(t *testing.T) {
	f := newFixture(t)
	c := f.login(t, "198.51.100.1:1000")
	res := f.do("POST", "/logout", "198.51.100.1:1000", url.Values{}, c)
	if res.StatusCode != http.StatusSeeOther || len(res.Cookies()) != 1 || res.Cookies()[0].MaxAge >= 0 {
		t.Errorf("logout: %s, cookies %+v; want a redirect clearing the cookie", res.Status, res.Cookies())
	}
	if res := f.do("GET", "/api/mesh", "198.51.100.1:1000", nil, c); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("after logout: %s, want 401", res.Status)
	}

	c = f.login(t, "198.51.100.1:1000")
	f.clock.advance(DefaultSessionTTL + time.Second)
	if res := f.do("GET", "/api/mesh", "198.51.100.1:1000", nil, c); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("after the session's lifetime: %s, want 401", res.Status)
	}
}

func TestTheDashboardIsReadOnly(t *testing.T) {
	f := newFixture(t)
	c := f.login(t, "198.51.100.1:1000")
	for _, r := range []struct{ method, path string }{
		{"POST", "/api/mesh"}, {"PUT", "/api/mesh"}, {"DELETE", "/api/mesh"}, {"PATCH", "/"}, {"POST", "/api/rotate"}, {"GET", "/api/nodes/a"},
	} {
		res := f.do(r.method, r.path, "198.51.100.1:1000", url.Values{}, c)
		if res.StatusCode != http.StatusMethodNotAllowed && res.StatusCode != http.StatusNotFound {
			t.Errorf("%s %s: %s, want 405 or 404", r.method, r.path, res.Status)
		}
	}
}

func TestMeshShowsNodesTunnelsHandshakesAndDrops(t *testing.T) {
	f := newFixture(t)
	c := f.login(t, "198.51.100.1:1000")
	res := f.do("GET", "/api/mesh", "198.51.100.1:1000", nil, c)
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%s %s", res.Status, res.Header.Get("Content-Type"))
	}
	var v View
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	if len(v.Nodes) != 2 || !v.Nodes[0].Healthy || v.Nodes[0].PeersUp != 1 || v.Nodes[0].PeersWanted != 1 || v.Nodes[0].LastSeen != 5 || !v.Live {
		t.Errorf("nodes %+v, live %v", v.Nodes, v.Live)
	}
	if d := v.Nodes[1].Drops; len(d) != 1 || d["classify/drop-block"] != 4 {
		t.Errorf("drops of b %v, want only classify/drop-block 4", d)
	}
	if len(v.Tunnels) != 1 || v.Tunnels[0].HandshakeA != 7 || v.Tunnels[0].HandshakeB != 7 || !v.Tunnels[0].Healthy || v.Tunnels[0].RxBytes != 2048 {
		t.Errorf("tunnels %+v", v.Tunnels)
	}
	if v.Checks == 0 || len(v.Failures) != 0 {
		t.Errorf("%d checks, failures %v; want all passing", v.Checks, v.Failures)
	}
	// A second viewer within the refresh interval shares the read.
	f.do("GET", "/api/mesh", "198.51.100.1:1000", nil, c)
	if n := f.loads.Load(); n != 1 {
		t.Errorf("two views in one interval read the cluster %d times, want 1", n)
	}
}

func TestNewRefusesAnythingButABcryptHash(t *testing.T) {
	load := func(context.Context) (*meshview.Mesh, error) { return &meshview.Mesh{}, nil }
	for _, h := range []string{"", "hunter2", "$2y$10$short"} {
		if _, err := New(Options{PasswordHash: []byte(h), Load: load}); err == nil {
			t.Errorf("hash %q was accepted", h)
		}
	}
	// htpasswd's "user:hash" (as Helm's htpasswd function writes it).
	if _, err := New(Options{PasswordHash: append([]byte("admin:"), hash(t, password)...), Load: load}); err != nil {
		t.Errorf("htpasswd line: %v", err)
	}
}
