//go:build tools

// kube-apiserver and kube-controller-manager at the pinned version (KUBERNETES_VERSION in
// manifests/platform/versions.env): keeps their dependencies in this module, so
// `go build k8s.io/kubernetes/cmd/<name>` from here uses the graph pinned by go.mod and go.sum.
// kube-controller-manager runs only its HPA controller in `make test-keda`, which reconciles
// the HorizontalPodAutoscalers KEDA creates (1 -> N).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
