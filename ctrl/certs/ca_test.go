package certs

import (
	"crypto/x509"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func newTestCA(t *testing.T) *CA {
	t.Helper()
	ca, err := NewCA("test-ca", t0, 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestServingCertificateVerifiesForEverySAN(t *testing.T) {
	ca := newTestCA(t)
	cert, err := ca.IssueServing(ServingOptions{
		DNSNames: []string{"vpblu-controller.vpblu-system.svc", "localhost"},
		IPs:      []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("2001:db8::1")},
	}, t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		host    string
		wantErr bool
	}{
		{"service DNS name", "vpblu-controller.vpblu-system.svc", false},
		{"localhost", "localhost", false},
		{"IPv4 SAN", "127.0.0.1", false},
		{"IPv6 SAN", "2001:db8::1", false},
		{"a name not listed is refused", "evil.example", true},
		{"an IP not listed is refused", "198.18.0.9", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cert.Leaf.Verify(x509.VerifyOptions{
				DNSName: tc.host, Roots: ca.Pool(), CurrentTime: t0.Add(time.Hour),
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			if (err != nil) != tc.wantErr {
				t.Errorf("verify %s: err = %v, want error %v", tc.host, err, tc.wantErr)
			}
		})
	}
}

func TestServingCertificateNeverOutlivesCA(t *testing.T) {
	ca, err := NewCA("short", t0, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssueServing(ServingOptions{DNSNames: []string{"x"}, Validity: 48 * time.Hour}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.Leaf.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("serving NotAfter %v, CA NotAfter %v", cert.Leaf.NotAfter, ca.Cert.NotAfter)
	}
}

func TestIssueServingWithoutSANsIsRefused(t *testing.T) {
	_, err := newTestCA(t).IssueServing(ServingOptions{}, t0)
	if !errors.Is(err, ErrNoSANs) {
		t.Errorf("err = %v, want ErrNoSANs", err)
	}
}

func TestParseCARefusesBadMaterial(t *testing.T) {
	a, b := newTestCA(t), newTestCA(t)
	leaf, err := a.IssueServing(ServingOptions{DNSNames: []string{"x"}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	leafPEM := pemCert(leaf.Certificate[0])
	for _, tc := range []struct {
		name      string
		cert, key []byte
	}{
		{"empty", nil, nil},
		{"garbage certificate", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), a.KeyPEM},
		{"key of another CA", a.CertPEM, b.KeyPEM},
		{"a leaf is not a CA", leafPEM, a.KeyPEM},
		{"missing key", a.CertPEM, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseCA(tc.cert, tc.key); !errors.Is(err, ErrInvalidCA) {
				t.Errorf("err = %v, want ErrInvalidCA", err)
			}
		})
	}
	t.Run("a matching pair parses", func(t *testing.T) {
		got, err := ParseCA(a.CertPEM, a.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Cert.Equal(a.Cert) {
			t.Error("parsed a different certificate")
		}
	})
}

func TestRenewerReissuesAfterTwoThirdsOfLifetime(t *testing.T) {
	ca := newTestCA(t)
	now := t0
	r, err := NewRenewer(ca, ServingOptions{DNSNames: []string{"x"}, Validity: 30 * time.Hour}, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	first, _ := r.GetCertificate(nil)
	var got []bool
	// NotBefore is 5 minutes before issue, so two thirds of 30h05m from
	// t0-5m is t0+19h58m20s.
	for _, at := range []time.Duration{time.Hour, 19 * time.Hour, 20 * time.Hour} {
		now = t0.Add(at)
		c, err := r.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, c != first)
	}
	if d := cmp.Diff([]bool{false, false, true}, got); d != "" {
		t.Errorf("renewed at 1h, 19h, 20h (-want +got):\n%s", d)
	}
}
