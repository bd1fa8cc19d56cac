#!/usr/bin/env bash
# `make platform`: builds and caches the real platform the functions are tested on, pinned in
# manifests/platform/versions.env:
#   - daprd (with only the components we use), the Dapr Scheduler and placement, from the
#     github.com/dapr/dapr Go module through the wrapper module platform/daprd/;
#   - the Apache Kafka broker's jars, from Maven Central (platform/kafka/pom.xml);
#   - PostgreSQL, from Debian's packages.
# Everything lands outside the work tree, in TODO_PLATFORM_CACHE (default
# ~/.cache/todo-functions/platform), one folder per version (daprd's also per wrapper module
# content): a warm run only checks that the files are there. Prints the cold build time and the
# binaries' sizes.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
load_versions

CACHE="${PLATFORM_CACHE}"
# Keyed by the wrapper module's content too (the components it registers, its go.sum): a
# component added there is built in, never missing from a daprd cached before it.
DAPR_WRAPPER_HASH="$(cd "${ROOT}/platform/daprd" && cat go.mod go.sum ./*.go | sha256sum | cut -c1-12)"
DAPR_DIR="${CACHE}/dapr-${DAPR_VERSION}-${DAPR_WRAPPER_HASH}"
KAFKA_DIR="${CACHE}/kafka-${KAFKA_VERSION}"
mkdir -p "${CACHE}"
started=$(date +%s)
built=()

# --- Go: daprd, the Scheduler and placement -------------------------------------------------
# Placement is not used by the functions (their sidecars run without it); an agent's sidecar
# needs it for the workflows of an MCPServer (system-tests/tests/mcp_dapr.rs, docs/mcp-dapr.md).
# Each binary is built only if it is missing, so a cache from before placement gains it alone.
DAPR_BINARIES=(daprd scheduler placement)
build_dapr() {
  local missing=() name
  for name in "${DAPR_BINARIES[@]}"; do
    [ -x "${DAPR_DIR}/${name}" ] || missing+=("${name}")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    info "daprd + Scheduler + placement ${DAPR_VERSION}: cached in ${DAPR_DIR}"
    return
  fi
  require_tools "go|Go >= 1.26.5 is needed to build daprd (dapr ${DAPR_VERSION}'s go.mod): https://go.dev/dl/"
  local module="${ROOT}/platform/daprd"
  grep -q "github.com/dapr/dapr v${DAPR_VERSION}\$" "${module}/go.mod" ||
    die "platform/daprd/go.mod does not require github.com/dapr/dapr v${DAPR_VERSION} (versions.env): update both together"
  log "building ${missing[*]} ${DAPR_VERSION} (cold, daprd: ~12-15 min on 2 cores)"
  # Built in a copy, so the generated app.go never lands in the work tree.
  local src="${CACHE}/build/daprd-${DAPR_VERSION}"
  rm -rf "${src}" && mkdir -p "${src}" "${DAPR_DIR}"
  cp "${module}"/go.mod "${module}"/go.sum "${module}"/*.go "${src}/"
  (
    cd "${src}"
    # -mod=readonly: go.mod and go.sum (tools.go keeps the Scheduler's and placement's
    # dependencies there) are the whole graph; nothing is resolved anew.
    export GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0
    go mod download github.com/dapr/dapr
    local upstream
    upstream="$(go list -m -f '{{.Dir}}' github.com/dapr/dapr)"
    # upstream's cmd/daprd/app, minus its import of every component (components.go registers ours).
    sed -e 's/^package app$/package main/' -e '/cmd\/daprd\/components"$/d' \
      "${upstream}/cmd/daprd/app/app.go" > app.go
    grep -q '^package main$' app.go || die "could not generate app.go from ${upstream}/cmd/daprd/app/app.go"
    local ldflags="-s -w -X github.com/dapr/dapr/pkg/buildinfo.version=${DAPR_VERSION}" package
    for name in "${missing[@]}"; do
      case "${name}" in
        daprd) package=. ;;
        *) package="github.com/dapr/dapr/cmd/${name}" ;;
      esac
      # Into a temporary name first: an interrupted build never looks cached.
      go build -trimpath -ldflags "${ldflags}" -o "${DAPR_DIR}/${name}.tmp" "${package}"
      mv "${DAPR_DIR}/${name}.tmp" "${DAPR_DIR}/${name}"
    done
  )
  built+=("${missing[@]}")
}

# --- Maven: the Kafka broker ---------------------------------------------------------------
fetch_kafka() {
  if [ -f "${KAFKA_DIR}/libs/kafka_2.13-${KAFKA_VERSION}.jar" ] && [ -f "${KAFKA_DIR}/complete" ]; then
    info "Kafka ${KAFKA_VERSION}: cached in ${KAFKA_DIR}"
    return
  fi
  command -v java >/dev/null 2>&1 || apt_install openjdk-17-jre-headless
  command -v mvn >/dev/null 2>&1 || apt_install maven
  log "fetching Apache Kafka ${KAFKA_VERSION} from Maven Central"
  rm -rf "${KAFKA_DIR}" && mkdir -p "${KAFKA_DIR}"
  mvn -q -B -f "${ROOT}/platform/kafka/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
    -Dkafka.version="${KAFKA_VERSION}" -Dslf4j.version="${SLF4J_VERSION}" \
    -DoutputDirectory="${KAFKA_DIR}/libs"
  # slf4j-api 1.7 from Kafka's own dependencies would shadow 2.x and bind no logger.
  find "${KAFKA_DIR}/libs" -name 'slf4j-api-1.*.jar' -delete
  touch "${KAFKA_DIR}/complete"
  built+=("kafka")
}

# --- Debian: PostgreSQL --------------------------------------------------------------------
postgres_bin() {
  local dir="/usr/lib/postgresql/${POSTGRES_MAJOR}/bin"
  if [ ! -x "${dir}/initdb" ]; then
    log "installing PostgreSQL ${POSTGRES_MAJOR} from the distribution's packages"
    apt_install "postgresql-${POSTGRES_MAJOR}" || true
  fi
  if [ ! -x "${dir}/initdb" ]; then
    # Another distribution release carries another major (Ubuntu 24.04: 16); the functions
    # need nothing version-specific, so take the newest one installed, or the default one.
    dir="$(find /usr/lib/postgresql -maxdepth 3 -path '*/bin/initdb' 2>/dev/null | sort -V | tail -n 1 | xargs -r dirname)"
    if [ -z "${dir}" ]; then
      apt_install postgresql
      dir="$(find /usr/lib/postgresql -maxdepth 3 -path '*/bin/initdb' | sort -V | tail -n 1 | xargs -r dirname)"
    fi
    [ -n "${dir}" ] || die "no PostgreSQL found after installing it: install PostgreSQL ${POSTGRES_MAJOR} yourself"
    warn "PostgreSQL ${POSTGRES_MAJOR} (versions.env) is not available here: using ${dir}"
  fi
  # initdb refuses root: the platform runs PostgreSQL as this unprivileged user.
  if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /usr/sbin/nologin postgres
  fi
  info "PostgreSQL: ${dir}"
  echo "${dir}"
}

build_dapr
fetch_kafka
PG_BIN="$(postgres_bin)"

# What the harness (system-tests/src/platform.rs) reads: the paths of this build.
cat > "${CACHE}/platform.env" <<ENV
DAPRD=${DAPR_DIR}/daprd
DAPR_SCHEDULER=${DAPR_DIR}/scheduler
DAPR_PLACEMENT=${DAPR_DIR}/placement
KAFKA_LIBS=${KAFKA_DIR}/libs
POSTGRES_BIN=${PG_BIN}
ENV

elapsed=$(($(date +%s) - started))
log "platform ready in ${elapsed} s${built[*]:+ (built: ${built[*]})}: ${CACHE}/platform.env"
size() { du -sh "$1" | cut -f1; }
info "daprd     $(size "${DAPR_DIR}/daprd")"
info "scheduler $(size "${DAPR_DIR}/scheduler")"
info "placement $(size "${DAPR_DIR}/placement")"
info "kafka     $(size "${KAFKA_DIR}/libs") in $(find "${KAFKA_DIR}/libs" -name '*.jar' | wc -l) jars"
