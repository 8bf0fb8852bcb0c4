// Package tools holds developer and operator tools that are not part of
// the controller or the daemon: meshtop, the kubectl plugin, and the
// builders of test assets (tools/k8s, a separate module that builds
// kube-apiserver and kubectl; tools/testenv, which starts them for tests).
package tools
