//go:build tools

// kube-apiserver at the pinned version (KUBERNETES_VERSION in manifests/platform/versions.env):
// keeps its dependencies in this module, so `go build k8s.io/kubernetes/cmd/kube-apiserver`
// from here uses the graph pinned by go.mod and go.sum.
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
