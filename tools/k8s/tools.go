//go:build tools

// Package k8s pins the Kubernetes binaries that tests run against.
package k8s

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
