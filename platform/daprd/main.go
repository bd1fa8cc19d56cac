// Command daprd is Dapr's sidecar with only the components this project uses registered
// (components.go). app.go is generated at build time from the pinned dapr module by
// scripts/platform.sh: upstream's cmd/daprd/app with its all-components import removed.
package main

func main() { Run() }
