//go:build tools

// etcd at the pinned version (ETCD_VERSION in manifests/platform/versions.env), the API
// server's storage in `make keda-platform`: `go build go.etcd.io/etcd/server/v3` from this
// module builds upstream's own main package with the graph pinned here.
package tools

import _ "go.etcd.io/etcd/server/v3"
