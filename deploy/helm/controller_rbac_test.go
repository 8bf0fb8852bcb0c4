package helm_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/deploy/helm"
	"github.com/lumbrjx/vpblu/tools/testenv"
)

// The controller, started with the arguments the chart gives it and
// authenticated as the chart's ServiceAccount (so with exactly the chart's
// RBAC), does its job on a real API server: it wins the Lease, creates the
// CA Secret and publishes the bundle, gives a new Node its VpbluNode,
// writes policy status and an Event, and is never refused.
func TestControllerRunsOnChartRBAC(t *testing.T) {
	bin := buildController(t)
	env := startAPIServer(t)
	r := render(t, "policies: {install: true}")
	install(t, env, r)
	ctx := t.Context()
	const ns = helm.DefaultNamespace

	health, dash := freeAddr(t), freeAddr(t)
	// The dashboard's hash file, as the Secret's volume would mount it.
	login := one[*corev1.Secret](t, r, "vpblu-dashboard")
	hashFile := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(hashFile, login.Data["htpasswd"], 0o600); err != nil {
		t.Fatal(err)
	}
	args := replaceFlags(controllerContainer(t, one[*appsv1.Deployment](t, r, controllerName)).Args, map[string]string{
		"stream-addr": freeAddr(t), "health-addr": health, "metrics-addr": "0", "log-format": "text",
		"dashboard-addr": dash, "dashboard-password-file": hashFile,
	})
	args = append(args, "--kubeconfig="+serviceAccountKubeconfig(t, env, ns, controllerName))
	log := &lockedBuffer{}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "POD_NAMESPACE="+ns)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("controller log:\n%s", log.String())
		}
	})

	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-a"},
		Spec:       corev1.NodeSpec{PodCIDR: "10.244.1.0/24", PodCIDRs: []string{"10.244.1.0/24"}},
	}
	if err := env.Client.Create(ctx, node); err != nil {
		t.Fatal(err)
	}

	for _, w := range []struct {
		what string
		done func() error
	}{
		{"the Lease is held", func() error {
			var l coordinationv1.Lease
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: controllerName}, &l); err != nil {
				return err
			}
			if ptr.Deref(l.Spec.HolderIdentity, "") == "" {
				return errors.New("no holder")
			}
			return nil
		}},
		{"the CA Secret exists", func() error {
			return env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "vpblu-ca"}, &corev1.Secret{})
		}},
		{"the CA bundle is published", func() error {
			var cm corev1.ConfigMap
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "vpblu-ca"}, &cm); err != nil {
				return err
			}
			if !strings.Contains(cm.Data["ca.crt"], "BEGIN CERTIFICATE") {
				return errors.New("no ca.crt")
			}
			return nil
		}},
		{"the Node has its VpbluNode", func() error {
			return env.Client.Get(ctx, client.ObjectKey{Name: node.Name}, &v1alpha1.VpbluNode{})
		}},
		{"the TunnelPolicy has status", func() error {
			var tp v1alpha1.TunnelPolicy
			if err := env.Client.Get(ctx, client.ObjectKey{Name: "fullmesh"}, &tp); err != nil {
				return err
			}
			if tp.Status.ObservedGeneration == 0 && len(tp.Status.Conditions) == 0 {
				return errors.New("no status")
			}
			return nil
		}},
		{"an Event about the VpbluNode is recorded", func() error {
			var events eventsv1.EventList
			if err := env.Client.List(ctx, &events, client.InNamespace(metav1.NamespaceDefault)); err != nil {
				return err
			}
			for _, e := range events.Items {
				if e.Regarding.Kind == "VpbluNode" && e.Regarding.Name == node.Name {
					return nil
				}
			}
			return fmt.Errorf("%d events, none about VpbluNode %s", len(events.Items), node.Name)
		}},
		{"the controller is ready", func() error {
			resp, err := http.Get("http://" + health + "/readyz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("/readyz: %s", resp.Status)
			}
			return nil
		}},
		{"the dashboard shows the node to the chart's password", func() error {
			jar, err := cookiejar.New(nil)
			if err != nil {
				return err
			}
			hc := &http.Client{Jar: jar, Timeout: 10 * time.Second}
			resp, err := hc.PostForm("http://"+dash+"/login", url.Values{"password": {string(login.Data["password"])}})
			if err != nil {
				return err
			}
			resp.Body.Close()
			resp, err = hc.Get("http://" + dash + "/api/mesh")
			if err != nil {
				return err
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"name":"`+node.Name+`"`) {
				return fmt.Errorf("/api/mesh: %s %s", resp.Status, body)
			}
			return nil
		}},
	} {
		if err := waitFor(60*time.Second, exited, w.done); err != nil {
			t.Fatalf("%s: %v", w.what, err)
		}
	}

	if refusals := regexp.MustCompile(`(?im)^.*(forbidden|cannot (get|list|watch|create|update|patch|delete)).*$`).FindAllString(log.String(), -1); len(refusals) > 0 {
		t.Errorf("the API server refused the controller %d times with the chart's RBAC:\n%s", len(refusals), strings.Join(refusals, "\n"))
	}
}

// waitFor polls done until it succeeds, the process exits or timeout
// passes.
func waitFor(timeout time.Duration, exited <-chan error, done func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := done()
		if err == nil {
			return nil
		}
		select {
		case e := <-exited:
			return fmt.Errorf("the controller exited (%v); last: %w", e, err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// buildController builds cmd/vpblu-controller with the flags of make build
// and make images, so the build cache is shared.
func buildController(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "vpblu-controller")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/vpblu-controller")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// serviceAccountKubeconfig writes a kubeconfig that authenticates as a
// ServiceAccount with a token the API server issues for it.
func serviceAccountKubeconfig(t *testing.T, env *testenv.Env, namespace, name string) string {
	t.Helper()
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(t.Context(), name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for %s/%s: %v", namespace, name, err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: env.Config.Host, CertificateAuthorityData: env.Config.CAData}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	cfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: name}
	cfg.CurrentContext = "test"
	file := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, file); err != nil {
		t.Fatal(err)
	}
	return file
}

// replaceFlags sets --name=value for each entry, replacing the chart's.
func replaceFlags(args []string, set map[string]string) []string {
	var out []string
	for _, a := range args {
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if _, ok := set[name]; !ok {
			out = append(out, a)
		}
	}
	for name, v := range set {
		out = append(out, "--"+name+"="+v)
	}
	return out
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
