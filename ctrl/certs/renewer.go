package certs

import (
	"crypto/tls"
	"fmt"
	"sync"
	"time"
)

// Renewer serves a certificate issued from a CA and issues a fresh one once
// two thirds of the current one's lifetime have passed. It is safe for
// concurrent use; plug GetCertificate into tls.Config.
type Renewer struct {
	ca   *CA
	opts ServingOptions
	now  func() time.Time

	mu   sync.Mutex
	cert *tls.Certificate
}

// NewRenewer issues the first certificate at once, so a bad configuration
// fails at start-up rather than at the first handshake. now may be nil
// (time.Now).
func NewRenewer(ca *CA, opts ServingOptions, now func() time.Time) (*Renewer, error) {
	if now == nil {
		now = time.Now
	}
	r := &Renewer{ca: ca, opts: opts, now: now}
	if _, err := r.current(); err != nil {
		return nil, err
	}
	return r, nil
}

// GetCertificate returns the current certificate, renewing it if due.
func (r *Renewer) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.current()
}

func (r *Renewer) current() (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if r.cert != nil {
		leaf := r.cert.Leaf
		renewAt := leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3)
		if now.Before(renewAt) {
			return r.cert, nil
		}
	}
	cert, err := r.ca.IssueServing(r.opts, now)
	if err != nil {
		if r.cert != nil && now.Before(r.cert.Leaf.NotAfter) {
			// Keep serving the still valid certificate.
			return r.cert, nil
		}
		return nil, fmt.Errorf("issue serving certificate: %w", err)
	}
	r.cert = cert
	return cert, nil
}

// TLSConfig returns a server TLS configuration (TLS 1.3, HTTP/2) serving
// the renewer's certificates.
func (r *Renewer) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: r.GetCertificate,
		NextProtos:     []string{"h2"},
	}
}
