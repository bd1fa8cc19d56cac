# syntax=docker/dockerfile:1
#
# One Dockerfile for every function. The workspace is compiled once (the `build` stage does not
# depend on FUNCTION, so BuildKit shares it between the six image builds) and each image is a
# distroless/static base plus one statically linked binary:
#
#   docker build --build-arg FUNCTION=create-task -t todo-functions/create-task:dev .
#
# FUNCTION is one of: task-api create-task on-task-completed fire-reminder audit-writer notifier
# (the crate names under functions/, which are also the Dapr app-ids and the image names).
# `make images` builds all of them; scripts/images.sh is the single place that knows how.

ARG FUNCTION=task-api

# ---------------------------------------------------------------------------------------- chef
# Toolchain for a static musl build, plus cargo-chef to cache the dependency graph as a layer.
# Pinned by digest (the multi-arch index of rust:1.95-slim-trixie, i.e. Rust 1.95.0 on Debian 13):
# a tag can be re-pointed, a digest cannot. Dependabot's docker ecosystem proposes new digests;
# scripts/check_pipeline.py fails on any FROM of a registry image without one.
FROM rust:1.95-slim-trixie@sha256:985053ebf77f576c742435c12c1923ee04dbe511e17f087dd1a8f022307d3aeb AS chef
# musl-tools: `ring` (the only C code in the dependency graph) needs a musl C compiler.
# Debian's package versions are tied to the pinned base image, so they are not pinned again.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-chef --locked --version 0.1.78
# Native builds only: the musl target matches the build platform's architecture. (Building an
# arm64 image on amd64 works under QEMU emulation, slowly.)
ARG TARGETARCH
RUN case "${TARGETARCH:-amd64}" in \
        amd64) triple=x86_64-unknown-linux-musl ;; \
        arm64) triple=aarch64-unknown-linux-musl ;; \
        *) echo "unsupported TARGETARCH '${TARGETARCH}' (amd64 or arm64)" >&2; exit 1 ;; \
    esac \
    && rustup target add "${triple}" \
    && echo "${triple}" > /rust-target
# cc-rs would look for <arch>-linux-musl-gcc; Debian ships the wrapper as plain musl-gcc.
ENV CC_x86_64_unknown_linux_musl=musl-gcc \
    CC_aarch64_unknown_linux_musl=musl-gcc \
    CARGO_TERM_COLOR=never
# The function crates, in one place for the two cargo invocations below.
ENV PACKAGES="-p task-api -p create-task -p on-task-completed -p fire-reminder -p audit-writer -p notifier"
WORKDIR /src

# ------------------------------------------------------------------------------------- planner
# recipe.json captures only what determines the dependency build (manifests and lock file), so
# the next stage's expensive layer is reused until a dependency actually changes.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# --------------------------------------------------------------------------------------- build
FROM chef AS build
COPY --from=planner /src/recipe.json recipe.json
# PACKAGES is a list of flags, split on purpose.
# hadolint ignore=SC2086
RUN cargo chef cook --release --locked --target "$(cat /rust-target)" --recipe-path recipe.json ${PACKAGES}
COPY . .
# The release profile (workspace Cargo.toml) already has LTO, one codegen unit and strip.
# task-api's build.rs links it with packed relative relocations, which the musl that Rust 1.93
# and later bundle (1.2.5) applies at start; with an older toolchain it leaves them out.
# hadolint ignore=SC2086
RUN cargo build --release --locked --target "$(cat /rust-target)" ${PACKAGES} \
    && mkdir -p /out \
    && for f in task-api create-task on-task-completed fire-reminder audit-writer notifier; do \
        cp "target/$(cat /rust-target)/release/${f}" "/out/${f}"; \
    done

# ------------------------------------------------------------------------------------- runtime
# distroless/static: CA certificates, /etc/passwd with `nonroot` (65532), no shell, no package
# manager, ~2 MB. Pinned by digest (Dependabot's docker ecosystem keeps it current).
FROM gcr.io/distroless/static-debian13:nonroot@sha256:1c2c046bc09ed40fad370b599a0b1ae7987f55b01e247cf27a7c27cd97e5bbc7 AS runtime
LABEL org.opencontainers.image.source="https://github.com/todo-functions/todo-functions" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="todo-functions"
# A container must listen beyond loopback for kubelet probes and Services; the binaries default
# to 127.0.0.1 for local runs. The manifests set it too, explicitly.
ENV APP_HOST=0.0.0.0 \
    APP_PORT=8080
# 8080: the app port Dapr and (for task-api) the Service talk to; 9464: /metrics when
# METRICS_PORT is set (the manifests do).
EXPOSE 8080 9464
USER 65532:65532

# One small stage per function: the binary keeps its own name, so `kubectl exec ... -- /task-api
# dev-token <user>` works without a shell.
FROM runtime AS fn-task-api
LABEL org.opencontainers.image.title="task-api" \
      org.opencontainers.image.description="todo-functions: REST front door (JWT auth) over the tasks store"
COPY --from=build --chown=0:0 --chmod=0555 /out/task-api /task-api
ENTRYPOINT ["/task-api"]

FROM runtime AS fn-create-task
LABEL org.opencontainers.image.title="create-task" \
      org.opencontainers.image.description="todo-functions: creates tasks requested on the task-create topic"
COPY --from=build --chown=0:0 --chmod=0555 /out/create-task /create-task
ENTRYPOINT ["/create-task"]

FROM runtime AS fn-on-task-completed
LABEL org.opencontainers.image.title="on-task-completed" \
      org.opencontainers.image.description="todo-functions: requests the next occurrence of a completed recurring task"
COPY --from=build --chown=0:0 --chmod=0555 /out/on-task-completed /on-task-completed
ENTRYPOINT ["/on-task-completed"]

FROM runtime AS fn-fire-reminder
LABEL org.opencontainers.image.title="fire-reminder" \
      org.opencontainers.image.description="todo-functions: owns reminder jobs and fires reminders"
COPY --from=build --chown=0:0 --chmod=0555 /out/fire-reminder /fire-reminder
ENTRYPOINT ["/fire-reminder"]

FROM runtime AS fn-audit-writer
LABEL org.opencontainers.image.title="audit-writer" \
      org.opencontainers.image.description="todo-functions: appends one audit entry per task event"
COPY --from=build --chown=0:0 --chmod=0555 /out/audit-writer /audit-writer
ENTRYPOINT ["/audit-writer"]

# The base's CA certificates are what the notifier verifies people's webhook endpoints against.
FROM runtime AS fn-notifier
LABEL org.opencontainers.image.title="notifier" \
      org.opencontainers.image.description="todo-functions: delivers due reminders by webhook and email"
COPY --from=build --chown=0:0 --chmod=0555 /out/notifier /notifier
ENTRYPOINT ["/notifier"]

# The image that `docker build --build-arg FUNCTION=<name>` produces. An unknown name fails
# here (BuildKit cannot resolve stage fn-<name>); scripts/images.sh checks the name first.
# DL3006 (untagged image) does not apply: fn-<name> is a stage of this file, not an image.
# hadolint ignore=DL3006
FROM fn-${FUNCTION}
