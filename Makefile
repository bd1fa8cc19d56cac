# todo-functions: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo

FUNCTIONS := task-api create-task on-task-completed fire-reminder audit-writer

.PHONY: help
help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-18s %s\n", $$1, $$2}'

.PHONY: build
build: ## Build every crate (debug)
	$(CARGO) build --workspace --locked

.PHONY: release
release: ## Build the release binaries (what the images ship)
	$(CARGO) build --workspace --locked --release

.PHONY: test
test: ## Run every test of the workspace
	$(CARGO) test --workspace --locked --all-features

.PHONY: fmt
fmt: ## Format the code
	$(CARGO) fmt --all

.PHONY: lint
lint: ## Formatting check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --locked --all-targets --all-features -- -D warnings

.PHONY: clean
clean: ## Remove build output
	$(CARGO) clean
