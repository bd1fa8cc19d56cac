//go:build tools

// Keeps the dependencies of the Scheduler and of placement in this module, so `go build
// github.com/dapr/dapr/cmd/scheduler` (and `.../cmd/placement`) from here uses the same pinned,
// replaced graph as daprd. Placement is what an agent's sidecar needs for Dapr workflows (the
// MCPServer's tools, docs/mcp-dapr.md); it brings hashicorp/raft, which daprd alone does not.
package main

import (
	_ "github.com/dapr/dapr/cmd/placement"
	_ "github.com/dapr/dapr/cmd/scheduler"
)
