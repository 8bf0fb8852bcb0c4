package certs

import (
	"bytes"
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Keys of the CA Secret and of the bundle ConfigMap.
const (
	// SecretCertKey holds the CA certificate (PEM) in the Secret and in the
	// ConfigMap.
	SecretCertKey = "ca.crt"
	// SecretKeyKey holds the CA private key (PEM) in the Secret.
	SecretKeyKey = "ca.key"
)

// DefaultName names the CA Secret and the bundle ConfigMap.
const DefaultName = "vpblu-ca"

// DefaultCAValidity is how long a CA the controller creates is valid.
const DefaultCAValidity = 10 * 365 * 24 * time.Hour

// StoreOptions say where the CA lives.
type StoreOptions struct {
	// Namespace of the Secret and the ConfigMap (the controller's).
	Namespace string
	// SecretName holds the CA (default vpblu-ca). When it exists, whoever
	// created it, the CA in it is used; it is never overwritten.
	SecretName string
	// ConfigMapName receives the CA certificate for daemons to mount
	// (default vpblu-ca).
	ConfigMapName string
	// Now is the clock used for a new CA (default time.Now).
	Now func() time.Time
}

func (o *StoreOptions) defaults() {
	if o.SecretName == "" {
		o.SecretName = DefaultName
	}
	if o.ConfigMapName == "" {
		o.ConfigMapName = DefaultName
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// EnsureCA loads the CA from its Secret, creating the Secret with a new CA
// when it does not exist, and publishes the CA certificate in the
// ConfigMap. Replicas racing to create the Secret agree on whichever
// creation won. c should read from the API server, not a cache.
func EnsureCA(ctx context.Context, c client.Client, opts StoreOptions) (*CA, error) {
	opts.defaults()
	ca, err := loadOrCreate(ctx, c, opts)
	if err != nil {
		return nil, err
	}
	if err := publish(ctx, c, opts, ca.CertPEM); err != nil {
		return nil, err
	}
	return ca, nil
}

func loadOrCreate(ctx context.Context, c client.Client, opts StoreOptions) (*CA, error) {
	key := client.ObjectKey{Namespace: opts.Namespace, Name: opts.SecretName}
	secret := &corev1.Secret{}
	err := c.Get(ctx, key, secret)
	switch {
	case err == nil:
		return caFromSecret(secret)
	case !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("get CA secret %s: %w", key, err)
	}
	ca, err := NewCA("vpblu-ca", opts.Now(), DefaultCAValidity)
	if err != nil {
		return nil, err
	}
	secret = &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: opts.Namespace, Name: opts.SecretName,
			Labels: map[string]string{"app.kubernetes.io/part-of": "vpblu"}},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{SecretCertKey: ca.CertPEM, SecretKeyKey: ca.KeyPEM},
	}
	err = c.Create(ctx, secret)
	switch {
	case err == nil:
		return ca, nil
	case apierrors.IsAlreadyExists(err):
		// Another replica won the race: use its CA.
		if err := c.Get(ctx, key, secret); err != nil {
			return nil, fmt.Errorf("get CA secret %s: %w", key, err)
		}
		return caFromSecret(secret)
	default:
		return nil, fmt.Errorf("create CA secret %s: %w", key, err)
	}
}

func caFromSecret(s *corev1.Secret) (*CA, error) {
	certPEM, keyPEM := s.Data[SecretCertKey], s.Data[SecretKeyKey]
	if len(certPEM) == 0 || len(keyPEM) == 0 {
		// cert-manager and kubectl create secret tls use these keys.
		certPEM, keyPEM = s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]
	}
	ca, err := ParseCA(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA secret %s/%s: %w", s.Namespace, s.Name, err)
	}
	return ca, nil
}

func publish(ctx context.Context, c client.Client, opts StoreOptions, certPEM []byte) error {
	key := client.ObjectKey{Namespace: opts.Namespace, Name: opts.ConfigMapName}
	cm := &corev1.ConfigMap{}
	err := c.Get(ctx, key, cm)
	switch {
	case apierrors.IsNotFound(err):
		cm = &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: opts.Namespace, Name: opts.ConfigMapName,
				Labels: map[string]string{"app.kubernetes.io/part-of": "vpblu"}},
			Data: map[string]string{SecretCertKey: string(certPEM)},
		}
		if err := c.Create(ctx, cm); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create CA bundle %s: %w", key, err)
		} else if err == nil {
			return nil
		}
		// Another replica created it: check its content below.
		if err := c.Get(ctx, key, cm); err != nil {
			return fmt.Errorf("get CA bundle %s: %w", key, err)
		}
	case err != nil:
		return fmt.Errorf("get CA bundle %s: %w", key, err)
	}
	if bytes.Equal([]byte(cm.Data[SecretCertKey]), certPEM) {
		return nil
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[SecretCertKey] = string(certPEM)
	if err := c.Update(ctx, cm); err != nil {
		return fmt.Errorf("update CA bundle %s: %w", key, err)
	}
	return nil
}
