package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"time"
)

// ErrNoSANs means a serving certificate was requested with neither DNS names
// nor IP addresses: no client could verify it.
var ErrNoSANs = errors.New("serving certificate needs at least one DNS name or IP address")

// ServingOptions describe a serving certificate.
type ServingOptions struct {
	// DNSNames and IPs are the subject alternative names daemons dial.
	DNSNames []string
	IPs      []net.IP
	// Validity is how long the certificate is valid (default 90 days).
	Validity time.Duration
}

// DefaultServingValidity is how long a serving certificate is valid unless
// ServingOptions say otherwise.
const DefaultServingValidity = 90 * 24 * time.Hour

// IssueServing issues a serving certificate signed by ca, valid from now.
// It is never valid beyond the CA.
func (ca *CA) IssueServing(opts ServingOptions, now time.Time) (*tls.Certificate, error) {
	if len(opts.DNSNames) == 0 && len(opts.IPs) == 0 {
		return nil, ErrNoSANs
	}
	validity := opts.Validity
	if validity <= 0 {
		validity = DefaultServingValidity
	}
	notAfter := now.Add(validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate serving key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	cn := "vpblu-controller"
	if len(opts.DNSNames) > 0 {
		cn = opts.DNSNames[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-5 * time.Minute),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     opts.DNSNames,
		IPAddresses:  opts.IPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign serving certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse serving certificate: %w", err)
	}
	return &tls.Certificate{
		Certificate: [][]byte{der, ca.Cert.Raw},
		PrivateKey:  key,
		Leaf:        leaf,
	}, nil
}

// Pool returns a certificate pool holding only the CA, for clients.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return pool
}
