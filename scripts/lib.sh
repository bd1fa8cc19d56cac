# shellcheck shell=bash
# Helpers shared by the deploy scripts. Sourced, never run.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
# Crate names = Dapr app-ids = image names.
FUNCTIONS=(task-api create-task on-task-completed fire-reminder audit-writer notifier)
# Fixed: the namespace the manifests render into (`namespace: todo` in the kustomizations under
# manifests/), where the scripts create Secrets, run the topics Job and wait for rollouts.
NAMESPACE=todo

log() { printf '\n==> %s\n' "$*" >&2; }
info() { printf '    %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# install_once <dir> <function>: runs `<function> <dir>` to install a pinned tool into <dir>, a
# cache outside the repo, unless it is there. Concurrent callers wait for one install (flock), and
# a half-finished install is never used: the marker is written last.
install_once() {
  local dir="$1" install="$2"
  [[ -f "${dir}/.installed" ]] && return 0
  mkdir -p "$(dirname "${dir}")"
  exec 9>"${dir}.lock"
  flock 9
  if [[ ! -f "${dir}/.installed" ]]; then
    rm -rf "${dir}"
    "${install}" "${dir}"
    touch "${dir}/.installed"
  fi
  exec 9>&-
}

# require_tools "<cmd>|<how to get it>" ...: checks every tool, then fails once, naming each
# missing one with how to install it.
require_tools() {
  local spec cmd hint missing=0
  for spec in "$@"; do
    cmd="${spec%%|*}"
    hint="${spec#*|}"
    if ! command -v "${cmd}" >/dev/null 2>&1; then
      printf 'error: %s is required but was not found on PATH. %s\n' "${cmd}" "${hint}" >&2
      missing=1
    fi
  done
  [ "${missing}" -eq 0 ] || exit 1
}

# require_env VAR "<what it is>": a required environment variable.
require_env() {
  local name="$1"
  [ -n "${!name:-}" ] || die "${name} is not set: $2"
}

# as_root <command...>: runs it as root (directly, or through sudo).
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    die "installing packages needs root: run as root or install them yourself: ${*: -1}"
  fi
}
# apt_install <package...>: Debian packages (apt-get update once per script).
apt_updated=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $* with your package manager"
  if [ "${apt_updated}" -eq 0 ]; then
    as_root apt-get update -qq >&2
    apt_updated=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

# Where `make platform` and `make keda-platform` cache what they build, one folder per version
# (TODO_PLATFORM_CACHE overrides it).
PLATFORM_CACHE="${TODO_PLATFORM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/todo-functions/platform}"
export PLATFORM_CACHE

load_versions() {
  # shellcheck source=/dev/null
  . "${ROOT}/manifests/platform/versions.env"
}

# The image tag of the working tree: dev-<short sha>, with -dirty for uncommitted changes, so
# that every local build rolls the pods.
dev_image_tag() {
  local sha
  sha="$(git -C "${ROOT}" rev-parse --short=12 HEAD 2>/dev/null || echo nogit)"
  if [ -n "$(git -C "${ROOT}" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    echo "dev-${sha}-dirty-$(date +%s)"
  else
    echo "dev-${sha}"
  fi
}

# random_secret <bytes>: that many bytes from the kernel's CSPRNG, hex-encoded.
random_secret() {
  od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'
}

# ensure_secret <name> <key> <value>: creates the Secret if it does not exist yet (never
# replaces one: tokens and keys must survive re-deploys). The value never touches the disk or a
# command line.
ensure_secret() {
  local name="$1" key="$2" value="$3"
  if kube get secret "${name}" -n "${NAMESPACE}" >/dev/null 2>&1; then
    info "secret ${name}: exists, kept"
    return 0
  fi
  printf '%s' "${value}" | kube create secret generic "${name}" -n "${NAMESPACE}" \
    --from-file="${key}=/dev/stdin" >/dev/null
  info "secret ${name}: created"
}

# apply_secret <name> <key>=<value>...: creates or updates the Secret from the given values
# (deploy-cloud: the environment is the source of truth). The values travel through pipes only
# (no command line, no file), and server-side apply keeps them out of a
# last-applied-configuration annotation.
apply_secret() {
  local name="$1"
  shift
  printf '%s\n' "$@" |
    kube create secret generic "${name}" -n "${NAMESPACE}" --from-env-file=/dev/stdin \
      --dry-run=client -o yaml |
    kube apply --server-side --force-conflicts --field-manager=todo-functions-deploy -f - >/dev/null
  info "secret ${name}: applied"
}

# kube / helmk: kubectl and helm pinned to KUBE_CONTEXT when it is set.
kube() {
  if [ -n "${KUBE_CONTEXT:-}" ]; then
    kubectl --context "${KUBE_CONTEXT}" "$@"
  else
    kubectl "$@"
  fi
}
helmk() {
  if [ -n "${KUBE_CONTEXT:-}" ]; then
    helm --kube-context "${KUBE_CONTEXT}" "$@"
  else
    helm "$@"
  fi
}

# install_dapr_and_keda [extra helm args for dapr...]: the pinned Dapr and KEDA releases.
install_dapr_and_keda() {
  log "Dapr ${DAPR_VERSION}"
  helmk repo add dapr https://dapr.github.io/helm-charts/ --force-update >/dev/null
  helmk upgrade --install dapr dapr/dapr --version "${DAPR_VERSION}" \
    --namespace dapr-system --create-namespace \
    --values "${ROOT}/manifests/platform/dapr-values.yaml" "$@" \
    --wait --timeout 10m
  log "KEDA ${KEDA_VERSION}"
  # KEDA's own PodMonitor only where the Prometheus Operator's CRDs exist.
  local podmonitor=false
  if kube get crd podmonitors.monitoring.coreos.com >/dev/null 2>&1; then
    podmonitor=true
  fi
  helmk repo add kedacore https://kedacore.github.io/charts --force-update >/dev/null
  helmk upgrade --install keda kedacore/keda --version "${KEDA_VERSION}" \
    --namespace keda --create-namespace \
    --values "${ROOT}/manifests/platform/keda-values.yaml" \
    --set "prometheus.operator.podMonitor.enabled=${podmonitor}" \
    --wait --timeout 10m
}

# render_overlay <overlay> <output file> [kustomization text]: renders an overlay (a path
# relative to the repository root), optionally through a temporary kustomization under target/
# that adds the given text (images, settings, components).
render_overlay() {
  local overlay="$1" out="$2"
  shift 2
  if [ "$#" -eq 0 ]; then
    kubectl kustomize "${ROOT}/${overlay}" >"${out}"
    return
  fi
  local dir
  mkdir -p "${ROOT}/target/kustomize"
  dir="$(mktemp -d "${ROOT}/target/kustomize/render.XXXXXX")"
  {
    echo "apiVersion: kustomize.config.k8s.io/v1beta1"
    echo "kind: Kustomization"
    echo "resources:"
    echo "  - ../../../${overlay}"
    printf '%s\n' "$@"
  } >"${dir}/kustomization.yaml"
  kubectl kustomize "${dir}" >"${out}"
  rm -rf "${dir}"
}

# images_kustomization <repo prefix> <tag> [<name prefix the overlay uses>]: `images:` lines
# retagging every function image. With IMAGE_DIGESTS_FILE set (lines `<function>=sha256:<hex>`,
# as scripts/images.sh DIGESTS_FILE and the CD workflow write them) every image is pinned by its
# digest instead: the cluster runs exactly the bytes that were scanned and signed, whatever
# later happens to a tag. A function missing from the file is an error, not a fallback.
images_kustomization() {
  local repo="$1" tag="$2" from="${3:-todo-functions}" fn digest
  echo "images:"
  for fn in "${FUNCTIONS[@]}"; do
    echo "  - name: ${from}/${fn}"
    echo "    newName: ${repo}/${fn}"
    if [ -n "${IMAGE_DIGESTS_FILE:-}" ]; then
      digest="$(sed -n "s/^${fn}=\(sha256:[0-9a-f]\{64\}\)\$/\1/p" "${IMAGE_DIGESTS_FILE}" | head -n1)"
      [ -n "${digest}" ] || die "${IMAGE_DIGESTS_FILE} has no sha256 digest for ${fn}"
      echo "    digest: ${digest}"
    else
      echo "    newTag: \"${tag}\""
    fi
  done
}

# ensure_postgres_role_secrets <administrator connection string>: the per-app PostgreSQL
# credentials (manifests/base/postgres/roles.sql): Secret `<app-id>-postgres` for each function
# and `keda-postgres` for the KEDA postgresql triggers (fire-reminder's and the notifier's), keys `password` (set on the role by the
# postgres-roles Job) and `connectionString` (the administrator's host, port, dbname and sslmode
# with the role's user and password; daprd gets it as PG_CONNECTION_STRING through
# `dapr.io/env-from-secret`). Generated once and kept, like the tokens. The administrator's
# string must be libpq keyword/value ("host=... user=... password=..."). Also writes Secret
# `postgres-admin`, read only by the Job.
ensure_postgres_role_secrets() {
  local admin="$1" base fn role password
  printf 'connectionString=%s\n' "${admin}" |
    kube create secret generic postgres-admin -n "${NAMESPACE}" --from-env-file=/dev/stdin \
      --dry-run=client -o yaml |
    kube apply --server-side --force-conflicts --field-manager=todo-functions-deploy -f - >/dev/null
  info "secret postgres-admin: applied"
  base="$(printf '%s' "${admin}" | sed -E "s/(^|[[:space:]])(user|password)=('[^']*'|[^[:space:]]*)//g")"
  for fn in "${FUNCTIONS[@]}" keda; do
    if kube get secret "${fn}-postgres" -n "${NAMESPACE}" >/dev/null 2>&1; then
      info "secret ${fn}-postgres: exists, kept"
      continue
    fi
    role="${fn//-/_}"
    [ "${fn}" != keda ] || role=keda_reminders
    password="$(random_secret 24)"
    printf 'password=%s\nconnectionString=%s user=%s password=%s\n' "${password}" "${base}" "${role}" "${password}" |
      kube create secret generic "${fn}-postgres" -n "${NAMESPACE}" --from-env-file=/dev/stdin >/dev/null
    info "secret ${fn}-postgres: created (role ${role})"
  done
}

# connection_password <libpq keyword/value string>: its `password` value (unquoted), or nothing.
connection_password() {
  local keyword=password
  printf '%s' "$1" | sed -nE "s/.*(^|[[:space:]])${keyword}=('([^']*)'|([^[:space:]]*)).*/\3\4/p"
}

# run_postgres_roles_job <rendered manifests>: (re)creates the postgres-roles Job (roles,
# tables and grants of manifests/base/postgres/roles.sql, role passwords from the Secrets above)
# and waits for it, before any sidecar connects as its role.
run_postgres_roles_job() {
  local rendered="$1"
  log "PostgreSQL roles"
  kube delete job postgres-roles -n "${NAMESPACE}" --ignore-not-found --wait=true >/dev/null
  kube apply -f "${rendered}" -l app.kubernetes.io/name=postgres-roles >/dev/null
  wait_for_job postgres-roles 600
}

# run_topics_job <rendered manifests>: (re)creates the kafka-topics Job with its settings and
# waits for it. A Job's pod template is immutable, so it is deleted first.
run_topics_job() {
  local rendered="$1"
  log "Kafka topics"
  kube apply -f "${ROOT}/manifests/base/namespace.yaml" >/dev/null
  kube delete job kafka-topics -n "${NAMESPACE}" --ignore-not-found --wait=true >/dev/null
  kube apply -f "${rendered}" -l 'app.kubernetes.io/component=setup,app.kubernetes.io/name!=postgres-roles' >/dev/null
  wait_for_job kafka-topics 600
}

# wait_for_job <name> <timeout seconds>: succeeds when the Job completes, fails (with its logs)
# when it fails or times out.
wait_for_job() {
  local name="$1" timeout="$2" waited=0 succeeded failed
  while [ "${waited}" -lt "${timeout}" ]; do
    succeeded="$(kube get job "${name}" -n "${NAMESPACE}" -o jsonpath='{.status.succeeded}' 2>/dev/null || true)"
    failed="$(kube get job "${name}" -n "${NAMESPACE}" \
      -o jsonpath='{.status.conditions[?(@.type=="Failed")].status}' 2>/dev/null || true)"
    if [ "${succeeded:-0}" -ge 1 ]; then
      kube logs "job/${name}" -n "${NAMESPACE}" --tail=50 2>/dev/null | sed 's/^/    /' >&2 || true
      return 0
    fi
    if [ "${failed}" = "True" ]; then
      kube logs "job/${name}" -n "${NAMESPACE}" --tail=50 >&2 || true
      die "job ${name} failed (kubectl -n ${NAMESPACE} describe job ${name})"
    fi
    sleep 5
    waited=$((waited + 5))
  done
  kube logs "job/${name}" -n "${NAMESPACE}" --tail=50 >&2 || true
  die "job ${name} did not finish within ${timeout}s"
}

# wait_for_rollouts: every function's Deployment rolled out (workers may be at zero replicas).
wait_for_rollouts() {
  local fn
  log "Waiting for the rollouts"
  for fn in "${FUNCTIONS[@]}"; do
    kube rollout status "deployment/${fn}" -n "${NAMESPACE}" --timeout=5m
  done
}

# ensure_app_tokens: each function's own pair of Dapr tokens (the sidecar requires the API
# token from its app; the app requires the app token from its sidecar), Secrets
# <app-id>-dapr-api-token and <app-id>-app-api-token with key `token` (the only key the Dapr
# injector reads). Random, created once and kept; to rotate one, delete it and deploy again
# (the checksum annotation restarts that function's pods).
ensure_app_tokens() {
  local fn
  for fn in "${FUNCTIONS[@]}"; do
    ensure_secret "${fn}-dapr-api-token" token "$(random_secret 32)"
    ensure_secret "${fn}-app-api-token" token "$(random_secret 32)"
  done
}

# function_secrets <app-id>: the Secrets whose data a function's pods read at start-up (env,
# Dapr tokens, the sidecar's component credentials through dapr.io/env-from-secret): its own,
# named by the agreed convention (<app-id>-dapr-api-token, <app-id>-app-api-token,
# <app-id>-postgres, <app-id>-kafka, and <app-id> itself: the Secret Strimzi generates for
# KafkaUser <app-id>), task-api's `jwt`, the notifier's `smtp` (its `email` binding: the Dapr
# operator hands the relay's settings to its sidecar at start), and the shared `postgres` and
# `kafka` Secrets of the components that still use them.
function_secrets() {
  local fn="$1"
  printf '%s\n' "${fn}" "${fn}-dapr-api-token" "${fn}-app-api-token" "${fn}-postgres" "${fn}-kafka" \
    postgres kafka
  case "${fn}" in
    task-api) echo jwt ;;
    notifier) echo smtp ;;
  esac
}

# secrets_checksum <app-id>: a digest of the data of function_secrets <app-id> as they are in
# the cluster now (absent ones count as absent). The values go from kubectl through pipes into
# sha256sum only: never printed, never on a command line or on disk.
secrets_checksum() {
  local fn="$1" wanted
  wanted="$(function_secrets "${fn}" | tr '\n' ' ')"
  # Go templates range over a map in key order, and the API lists Secrets by name: stable text.
  # shellcheck disable=SC2016 # a Go template, not shell
  kube get secrets -n "${NAMESPACE}" -o go-template='{{range .items}}{{.metadata.name}} {{range $k, $v := .data}}{{$k}}={{$v}},{{end}}{{"\n"}}{{end}}' |
    awk -v wanted=" ${wanted}" 'index(wanted, " " $1 " ") > 0' |
    sha256sum | cut -c1-32
}

# secrets_checksum_patches: kustomize `patches:` stamping each function's pod template with the
# checksum of its Secrets (annotation todo-functions/secrets-checksum). Kubernetes does not
# restart pods when a Secret they read changes (env and Dapr tokens are read once, at start):
# a changed checksum changes the pod template, so `kubectl apply` rolls that Deployment, and
# only that one. Unchanged Secrets leave the template as it was: no restart.
secrets_checksum_patches() {
  local fn
  echo "patches:"
  for fn in "${FUNCTIONS[@]}"; do
    cat <<PATCH
  - patch: |-
      apiVersion: apps/v1
      kind: Deployment
      metadata:
        name: ${fn}
      spec:
        template:
          metadata:
            annotations:
              todo-functions/secrets-checksum: "$(secrets_checksum "${fn}")"
PATCH
  done
}

# require_verify_full <name> <connection string>: refuses a PostgreSQL connection string that
# does not verify the server's certificate and host name (sslmode=verify-full), in either
# form: key=value ("host=... sslmode=verify-full") or URL ("postgres://...?sslmode=verify-full").
# The string itself is never printed.
require_verify_full() {
  local name="$1" value="$2" modes
  modes="$(printf '%s' "${value}" | grep -oE '(^|[[:space:]?&])sslmode=[A-Za-z-]*' | sed 's/.*sslmode=//' | sort -u)"
  [ "${modes}" = verify-full ] ||
    die "${name} must set sslmode=verify-full (the server's certificate and host name verified; found: ${modes:-no sslmode}): see docs/deploy.md"
}

# apply_smtp_secret <host> <port> <user> <password> <from>: Secret `smtp`, the notifier's mail
# relay (dapr-components/k8s/email.yaml reads keys host, port, user, password, from through the
# Dapr operator). User and password both or neither (bindings.smtp refuses one alone); the
# values travel like apply_secret's, never on a command line.
apply_smtp_secret() {
  local host="$1" port="$2" user="$3" password="$4" from="$5"
  [[ "${host}" =~ ^[A-Za-z0-9.-]+$ ]] || die "SMTP_HOST must be a host name, not '${host}'"
  { [[ "${port}" =~ ^[0-9]{1,5}$ ]] && [ "${port}" -ge 1 ] && [ "${port}" -le 65535 ]; } ||
    die "SMTP_PORT must be a port number, not '${port}'"
  { [ -n "${user}" ] && [ -n "${password}" ]; } || { [ -z "${user}" ] && [ -z "${password}" ]; } ||
    die "SMTP_USER and SMTP_PASSWORD: both or neither (the relay's login)"
  [[ "${from}" =~ ^[^[:space:]@\;,]+@[A-Za-z0-9.-]+$ ]] || die "SMTP_FROM must be one mail address, not '${from}'"
  apply_secret smtp "host=${host}" "port=${port}" "user=${user}" "password=${password}" "from=${from}"
}
