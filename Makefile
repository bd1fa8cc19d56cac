# todo-functions: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo

FUNCTIONS := task-api create-task on-task-completed fire-reminder audit-writer notifier
# Where `make run` keeps its database and JWT secret (git-ignored).
DEVHOST_DIR := .devhost
TASK_API_URL ?= http://127.0.0.1:8080

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-18s %s\n", $$1, $$2}'

.PHONY: run
run: ## Build and run the whole system on devhost (task-api on :8080, MCP at /mcp); Ctrl-C stops it
	$(CARGO) build --workspace --locked
	@mkdir -p $(DEVHOST_DIR)
	@test -s $(DEVHOST_DIR)/jwt-secret || { od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > $(DEVHOST_DIR)/jwt-secret; chmod 600 $(DEVHOST_DIR)/jwt-secret; }
	@export JWT_SECRET="$$(cat $(DEVHOST_DIR)/jwt-secret)"; \
	  token="$$("$${CARGO_TARGET_DIR:-target}/debug/devhost" dev-token alice)"; \
	  printf '\n  task-api:  %s\n  MCP:       %s/mcp (for AI agents: README, "Use it from an AI agent")\n  dev token: export TOKEN=%s\n  try:       curl -H "Authorization: Bearer $$TOKEN" %s/v1/tasks\n  mail:      reminders sent by email are printed here (a local SMTP sink on 127.0.0.1:2525)\n  demo:      make demo (in another terminal)\n\n' \
	    "$(TASK_API_URL)" "$(TASK_API_URL)" "$$token" "$(TASK_API_URL)"; \
	  "$${CARGO_TARGET_DIR:-target}/debug/mail-sink" --listen 127.0.0.1:2525 & \
	  exec "$${CARGO_TARGET_DIR:-target}/debug/devhost" --run-file dapr.yaml --db $(DEVHOST_DIR)/devhost.sqlite

# `make token TOKEN_USER=bob`: whose token `make token` mints.
TOKEN_USER ?= alice

.PHONY: token
token: ## Print a development token (12 h) of `make run`'s system for TOKEN_USER (default alice), for curl or an MCP client
	@test -s $(DEVHOST_DIR)/jwt-secret || { echo "no $(DEVHOST_DIR)/jwt-secret yet: start the system once with make run" >&2; exit 1; }
	@$(CARGO) build --quiet --locked -p devhost
	@JWT_SECRET="$$(cat $(DEVHOST_DIR)/jwt-secret)" "$${CARGO_TARGET_DIR:-target}/debug/devhost" dev-token "$(TOKEN_USER)"

.PHONY: platform
platform: ## Build and cache the real platform: daprd + Scheduler, Kafka, PostgreSQL (cold ~15 min, warm seconds)
	bash scripts/platform.sh

.PHONY: keda-platform
keda-platform: ## Build and cache etcd, kube-apiserver, kube-controller-manager, KEDA (operator, metrics API server) + CRDs (cold ~25 min, warm seconds)
	bash scripts/keda-platform.sh

.PHONY: test-keda
test-keda: platform ## Rendered manifests dry-run on a real kube-apiserver; then KEDA + the HPA controller scale the functions 0 -> 1 -> N -> 0 on real lag
	bash scripts/test-keda.sh
	$(CARGO) build --workspace --locked
	$(CARGO) test --locked -p system-tests --features platform --test keda -- --test-threads=1 --nocapture

.PHONY: run-dapr
run-dapr: platform ## The same system on real daprd + Scheduler + Kafka + PostgreSQL; Ctrl-C stops it
	$(CARGO) build --workspace --locked
	@mkdir -p $(DEVHOST_DIR)
	@test -s $(DEVHOST_DIR)/jwt-secret || { od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > $(DEVHOST_DIR)/jwt-secret; chmod 600 $(DEVHOST_DIR)/jwt-secret; }
	@"$${CARGO_TARGET_DIR:-target}/debug/mail-sink" --listen 127.0.0.1:2525 & \
	  exec "$${CARGO_TARGET_DIR:-target}/debug/run-dapr"

.PHONY: demo
demo: ## Play the demo scenario against `make run`'s system, or a private one if none runs
	$(CARGO) build --workspace --locked
	TASK_API_URL=$(TASK_API_URL) "$${CARGO_TARGET_DIR:-target}/debug/demo"

.PHONY: build
build: ## Build every crate (debug)
	$(CARGO) build --workspace --locked

.PHONY: release
release: ## Build the release binaries (what the images ship)
	$(CARGO) build --workspace --locked --release

.PHONY: test
test: ## Run every test of the workspace (the end-to-end tests run the built binaries)
	$(CARGO) build --workspace --locked
	$(CARGO) test --workspace --locked
	$(CARGO) test --locked -p dapr-fn --features tls --lib dapr::

.PHONY: test-api
test-api: ## schemathesis against task-api on devhost: every check, response schemas included (installs it, ~1 min)
	$(CARGO) build --workspace --locked
	bash scripts/test-api.sh

.PHONY: cost
cost: ## What scale-to-zero costs and saves: the shipped settings replayed through KEDA's rules (cost/, docs/cost.md)
	@# The overlay as the cluster gets it, replayed; rewrites docs/cost.svg and the generated section
	@# of docs/cost.md (cost/tests/doc.rs fails when they are stale). Commit the result.
	set -o pipefail; kubectl="$$(scripts/lint-tools.sh)/kubectl"; \
	  "$$kubectl" kustomize manifests/overlays/cloud | \
	  $(CARGO) run --quiet --locked -p cost -- --svg docs/cost.svg --doc docs/cost.md -

.PHONY: openapi
openapi: ## Regenerate functions/task-api/openapi.json from the Rust types (commit the result)
	UPDATE_OPENAPI=1 $(CARGO) test --locked -p task-api --test openapi the_served_file_is_generated_from_the_types

.PHONY: test-platform
test-platform: platform ## The end-to-end and fault tests on the real platform (daprd, Scheduler, Kafka, PostgreSQL)
	$(CARGO) build --workspace --locked
	$(CARGO) test --locked -p system-tests --features platform --test kafka_client --test conformance --test platform --test privileges --test query_plans --test kafka_offsets --test mcp_dapr -- --test-threads=1

.PHONY: faults
faults: ## Run only the fault suite and print its summary (part of make test too)
	$(CARGO) build --workspace --locked
	$(CARGO) test --locked -p system-tests --test hostile_input -- --nocapture
	$(CARGO) test --locked -p system-tests --test faults -- --nocapture

.PHONY: bench
bench: platform keda-platform ## Measure start time, memory, size, throughput, latencies, MCP tool calls and live streams on devhost and the real platform, and scale from zero with KEDA; writes BENCHMARKS.md (~48 min)
	$(CARGO) build --workspace --locked --release
	"$${CARGO_TARGET_DIR:-target}/release/bench"
	"$${CARGO_TARGET_DIR:-target}/release/bench" live

.PHONY: bench-scale
bench-scale: platform ## 1,000,000 tasks bulk-loaded into the real platform: list/GET/audit p95 and the relay and KEDA queries; writes "## 1M tasks" in BENCHMARKS.md (~5 min, ~5 GB in $TMPDIR)
	$(CARGO) build --workspace --locked --release
	"$${CARGO_TARGET_DIR:-target}/release/bench" scale

.PHONY: bench-live
bench-live: platform ## 1,000 live streams (GET /v1/events) and 100 changes/s on devhost and the real platform: change -> client p99; writes "## Live updates" in BENCHMARKS.md (~4 min)
	$(CARGO) build --workspace --locked --release
	"$${CARGO_TARGET_DIR:-target}/release/bench" live

.PHONY: fmt
fmt: ## Format the code
	$(CARGO) fmt --all

.PHONY: lint
lint: ## fmt check, clippy -D warnings, offline checks of the deployment artifacts
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --locked --all-targets --all-features -- -D warnings
	$(MAKE) --no-print-directory check-manifests
	@# Licenses, banned crates, sources of the dependency graph (deny.toml); the advisories need the
	@# RustSec database from the network, so CI runs the full `cargo deny check`. cargo-deny reads
	@# the graph of every target, whose crates a build for this one never downloads: fetch them.
	$(CARGO) fetch --locked
	deny="$$(scripts/lint-tools.sh cargo-deny)" && "$$deny" deny --frozen check licenses bans sources --hide-inclusion-graph
	@# Every dependency imported somewhere, and test-only ones in [dev-dependencies].
	shear="$$(scripts/lint-tools.sh cargo-shear)" && "$$shear" --frozen --deny-warnings

.PHONY: clean
clean: ## Remove build output
	$(CARGO) clean

include mk/deploy.mk
