//go:build tools

// Keeps the Scheduler's dependencies in this module, so `go build
// github.com/dapr/dapr/cmd/scheduler` from here uses the same pinned, replaced graph as daprd.
package main

import _ "github.com/dapr/dapr/cmd/scheduler"
