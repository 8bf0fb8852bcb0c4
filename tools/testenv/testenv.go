// Package testenv starts a real kube-apiserver and etcd with the vpblu CRDs
// installed, for tests and for the simulator. The binaries are the ones
// `make test-assets` builds and caches (hack/test-assets.sh); they are found
// through KUBEBUILDER_ASSETS or, failing that, in the cache directory.
//
// It is not a fake: API behaviour (validation, CEL rules, status
// subresources, TokenReview) is the real server's.
package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/deploy"
)

// KubernetesVersion is the version tools/k8s builds; it names the cache
// directory.
const KubernetesVersion = "v1.37.2"

// ErrNoAssets means the API server binaries have not been built.
var ErrNoAssets = errors.New("kube-apiserver test assets not found: run `make test-assets` (or set KUBEBUILDER_ASSETS)")

// Env is a running API server with the vpblu CRDs installed.
type Env struct {
	// Config reaches the server as a cluster admin.
	Config *rest.Config
	// Client is a controller-runtime client with the vpblu and core
	// Kubernetes types registered.
	Client client.Client
	// Scheme holds the vpblu and core Kubernetes types.
	Scheme *runtime.Scheme
	// Kubeconfig is the path of an admin kubeconfig file for processes
	// started outside this one (kubectl, the controller).
	Kubeconfig string
	// Assets is the directory holding kube-apiserver, etcd and kubectl.
	Assets string

	env *envtest.Environment
	dir string
}

// NewScheme returns a scheme with the core Kubernetes, CRD and vpblu types.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(apiextensionsv1.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	return s
}

// AssetsDir finds the directory holding kube-apiserver, etcd and kubectl.
func AssetsDir() (string, error) {
	candidates := []string{os.Getenv("KUBEBUILDER_ASSETS")}
	if home, err := os.UserHomeDir(); err == nil {
		cache := os.Getenv("VPBLU_CACHE")
		if cache == "" {
			cache = filepath.Join(home, ".cache", "vpblu")
		}
		candidates = append(candidates, filepath.Join(cache, "k8s", KubernetesVersion))
	}
	for _, dir := range candidates {
		if dir == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "kube-apiserver")); err == nil {
			return dir, nil
		}
	}
	return "", ErrNoAssets
}

// CRDs returns the CustomResourceDefinitions vpblu ships, parsed from
// deploy/crds.
func CRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	names, err := fs.Glob(deploy.CRDs, "crds/*.yaml")
	if err != nil {
		return nil, fmt.Errorf("list CRDs: %w", err)
	}
	sort.Strings(names)
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, name := range names {
		raw, err := deploy.CRDs.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(raw, crd); err != nil {
			return nil, fmt.Errorf("parse %s: %w", name, err)
		}
		crds = append(crds, crd)
	}
	return crds, nil
}

// Options tune the server.
type Options struct {
	// APIServerFlags are extra kube-apiserver flags ("--name=value" form
	// without dashes as keys).
	APIServerFlags map[string]string
}

// New starts an API server and etcd and installs the CRDs. Call Stop when
// done.
func New(opts Options) (*Env, error) {
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	crds, err := CRDs()
	if err != nil {
		return nil, err
	}
	scheme := NewScheme()
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDInstallOptions: envtest.CRDInstallOptions{
			CRDs:               crds,
			ErrorIfPathMissing: true,
			Scheme:             scheme,
		},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	args := env.ControlPlane.GetAPIServer().Configure()
	for k, v := range opts.APIServerFlags {
		args.Set(k, v)
	}
	cfg, err := env.Start()
	if err != nil {
		// Start leaves the servers running when a later step (such as
		// installing the CRDs) fails.
		_ = env.Stop()
		return nil, fmt.Errorf("start kube-apiserver from %s: %w", assets, err)
	}
	e := &Env{Config: cfg, Scheme: scheme, Assets: assets, env: env}
	if err := e.finish(); err != nil {
		_ = e.Stop()
		return nil, err
	}
	return e, nil
}

func (e *Env) finish() error {
	c, err := client.New(e.Config, client.Options{Scheme: e.Scheme})
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	e.Client = c
	user, err := e.env.ControlPlane.AddUser(envtest.User{Name: "vpblu-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("add admin user: %w", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("admin kubeconfig: %w", err)
	}
	e.dir, err = os.MkdirTemp("", "vpblu-testenv-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	e.Kubeconfig = filepath.Join(e.dir, "kubeconfig")
	if err := os.WriteFile(e.Kubeconfig, kubeconfig, 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}

// Stop stops the server and etcd and removes their files.
func (e *Env) Stop() error {
	err := e.env.Stop()
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
	return err
}

// Start starts a server for one test and stops it when the test ends. A
// missing test asset fails the test: it is never a silent skip.
func Start(t testing.TB) *Env {
	t.Helper()
	e, err := New(Options{})
	if err != nil {
		t.Fatalf("real API server: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Errorf("stop API server: %v", err)
		}
	})
	return e
}

// Kubectl runs the cached kubectl against the server and returns its
// combined output.
func (e *Env) Kubectl(args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command(filepath.Join(e.Assets, "kubectl"), append([]string{"--kubeconfig", e.Kubeconfig}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %v: %w: %s", args, err, out.String())
	}
	return out.String(), nil
}
