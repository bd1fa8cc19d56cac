package main

// The components the project's resources name, registered the way dapr's own
// cmd/daprd/components/*.go files do. The stock `stablecomponents` build pulls modules the Go
// module proxy does not serve, and compiles ~200 components we never load.

import (
	"github.com/dapr/components-contrib/bindings/http"
	"github.com/dapr/components-contrib/bindings/smtp"
	"github.com/dapr/components-contrib/nameresolution/mdns"
	"github.com/dapr/components-contrib/pubsub/kafka"
	pubsubInMemory "github.com/dapr/components-contrib/pubsub/in-memory"
	envSecretStore "github.com/dapr/components-contrib/secretstores/local/env"
	fileSecretStore "github.com/dapr/components-contrib/secretstores/local/file"
	stateInMemory "github.com/dapr/components-contrib/state/in-memory"
	pgv1 "github.com/dapr/components-contrib/state/postgresql/v1"
	pgv2 "github.com/dapr/components-contrib/state/postgresql/v2"
	"github.com/dapr/dapr/pkg/components"
	bindingsLoader "github.com/dapr/dapr/pkg/components/bindings"
	nrLoader "github.com/dapr/dapr/pkg/components/nameresolution"
	pubsubLoader "github.com/dapr/dapr/pkg/components/pubsub"
	secretstoresLoader "github.com/dapr/dapr/pkg/components/secretstores"
	stateLoader "github.com/dapr/dapr/pkg/components/state"
)

func init() {
	// Self-hosted name resolution: daprd refuses to start without one.
	nrLoader.DefaultRegistry.RegisterComponent(mdns.NewResolver, "mdns")

	pubsubLoader.DefaultRegistry.RegisterComponent(kafka.NewKafka, "kafka")
	pubsubLoader.DefaultRegistry.RegisterComponent(pubsubInMemory.New, "in-memory")

	// v1 is the default, as in dapr's own registration; v1 is the one with the Query API.
	stateLoader.DefaultRegistry.RegisterComponentWithVersions("postgresql", components.Versioning{
		Preferred: components.VersionConstructor{Version: "v2", Constructor: pgv2.NewPostgreSQLStateStore},
		Others:    []components.VersionConstructor{{Version: "v1", Constructor: pgv1.NewPostgreSQLStateStore}},
		Default:   "v1",
	})
	stateLoader.DefaultRegistry.RegisterComponent(stateInMemory.NewInMemoryStateStore, "in-memory")

	secretstoresLoader.DefaultRegistry.RegisterComponent(envSecretStore.NewEnvSecretStore, "local.env")
	secretstoresLoader.DefaultRegistry.RegisterComponent(fileSecretStore.NewLocalSecretStore, "local.file")

	bindingsLoader.DefaultRegistry.RegisterOutputBinding(http.NewHTTP, "http")
	// Email of reminders (issue 16, docs/notifier.md): invoked one call at a time, since the
	// component writes each request's metadata into its own configuration.
	bindingsLoader.DefaultRegistry.RegisterOutputBinding(smtp.NewSMTP, "smtp")
}
