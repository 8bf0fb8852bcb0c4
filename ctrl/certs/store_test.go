package certs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lumbrjx/vpblu/ctrl/certs"
	"github.com/lumbrjx/vpblu/tools/testenv"
)

// EnsureCA runs against a real API server: Secrets and ConfigMaps behave as
// in a cluster.
func TestEnsureCA(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	c := env.Client
	newNS := func(t *testing.T, name string) string {
		t.Helper()
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
			t.Fatal(err)
		}
		return name
	}
	bundle := func(t *testing.T, ns string) string {
		t.Helper()
		cm := &corev1.ConfigMap{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: certs.DefaultName}, cm); err != nil {
			t.Fatalf("CA bundle: %v", err)
		}
		return cm.Data[certs.SecretCertKey]
	}

	t.Run("first start creates the CA once and publishes it", func(t *testing.T) {
		ns := newNS(t, "create")
		first, err := certs.EnsureCA(ctx, c, certs.StoreOptions{Namespace: ns})
		if err != nil {
			t.Fatal(err)
		}
		second, err := certs.EnsureCA(ctx, c, certs.StoreOptions{Namespace: ns})
		if err != nil {
			t.Fatal(err)
		}
		if !first.Cert.Equal(second.Cert) {
			t.Error("second start made a new CA; want the stored one")
		}
		if got := bundle(t, ns); got != string(first.CertPEM) {
			t.Errorf("bundle ConfigMap holds %q, want the CA certificate", got)
		}
	})

	t.Run("replicas starting together agree on one CA", func(t *testing.T) {
		ns := newNS(t, "race")
		const replicas = 4
		cas := make(chan *certs.CA, replicas)
		errs := make(chan error, replicas)
		for range replicas {
			go func() {
				ca, err := certs.EnsureCA(ctx, c, certs.StoreOptions{Namespace: ns})
				cas <- ca
				errs <- err
			}()
		}
		var first *certs.CA
		for range replicas {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
			ca := <-cas
			if first == nil {
				first = ca
			} else if !first.Cert.Equal(ca.Cert) {
				t.Fatal("replicas ended up with different CAs")
			}
		}
		if got := bundle(t, ns); got != string(first.CertPEM) {
			t.Error("bundle does not hold the agreed CA")
		}
	})

	t.Run("a user-supplied CA is used and the bundle follows it", func(t *testing.T) {
		ns := newNS(t, "user")
		user, err := certs.NewCA("user-ca", time.Now(), time.Hour*24)
		if err != nil {
			t.Fatal(err)
		}
		// A stale bundle from an earlier CA is replaced.
		if err := c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: certs.DefaultName},
			Data: map[string]string{certs.SecretCertKey: "stale"}}); err != nil {
			t.Fatal(err)
		}
		if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: certs.DefaultName},
			Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: user.CertPEM, corev1.TLSPrivateKeyKey: user.KeyPEM}}); err != nil {
			t.Fatal(err)
		}
		got, err := certs.EnsureCA(ctx, c, certs.StoreOptions{Namespace: ns})
		if err != nil {
			t.Fatal(err)
		}
		if !got.Cert.Equal(user.Cert) {
			t.Error("the user's CA was not used")
		}
		if b := bundle(t, ns); b != string(user.CertPEM) {
			t.Errorf("bundle = %q, want the user's CA", b)
		}
	})

	t.Run("a broken Secret is an error and is left alone", func(t *testing.T) {
		ns := newNS(t, "broken")
		broken := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: certs.DefaultName},
			Data: map[string][]byte{certs.SecretCertKey: []byte("not a certificate"), certs.SecretKeyKey: []byte("x")}}
		if err := c.Create(ctx, broken); err != nil {
			t.Fatal(err)
		}
		_, err := certs.EnsureCA(ctx, c, certs.StoreOptions{Namespace: ns})
		if !errors.Is(err, certs.ErrInvalidCA) {
			t.Fatalf("err = %v, want ErrInvalidCA", err)
		}
		after := &corev1.Secret{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(broken), after); err != nil {
			t.Fatal(err)
		}
		if string(after.Data[certs.SecretCertKey]) != "not a certificate" {
			t.Error("the user's Secret was overwritten")
		}
	})
}
