// Package certs keeps the controller's TLS material: a CA held in a Secret
// (created on first start, or supplied by the user), its certificate
// published in a ConfigMap for daemons to mount, and serving certificates
// issued from it for the stream server, renewed before they expire.
//
// It is not client authentication: daemons prove who they are with
// ServiceAccount tokens (ctrl/auth), not certificates.
package certs
