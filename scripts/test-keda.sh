#!/usr/bin/env bash
# `make test-keda`, step 1: everything the overlays render is accepted by a real API server.
# Starts etcd + kube-apiserver (scripts/control-plane.sh, built by scripts/keda-platform.sh),
# applies the CRDs of Dapr, KEDA, the Prometheus Operator, CloudNativePG and Strimzi (generated
# from Strimzi's Maven Central jars), creates the namespaces, then `kubectl apply --server-side
# --dry-run=server` every rendered object: the minikube and cloud overlays, the monitoring
# manifests, manifests/platform/minikube (Strimzi's Kafka and KafkaNodePool included) and the
# KafkaUsers of manifests/kafka-users (in namespace kafka, as docs/deploy.md applies them). The
# API server checks each object against its real schema (built-in kinds and CRDs alike), with
# strict field validation: a wrong type or an unknown field fails the run. A negative check
# proves that: broken copies of a rendered ScaledObject, of a KafkaUser and of the MCPServer (its
# CEL rule included) must be rejected.
# Then (RUN_KEDA_OPERATOR=0
# skips it) the real KEDA operator runs against the API server and every ScaledObject of the
# minikube overlay, applied for real, must be Ready, or not Ready only because no Kafka broker runs here.
# `make test-keda` then runs system-tests/tests/keda.rs: the same control plane and operator
# (scripts/control-plane.sh --keda) scaling the functions on the real platform's Kafka lag.
set -euo pipefail
# shellcheck source=scripts/control-plane.sh
. "$(dirname "$0")/control-plane.sh"
load_versions

started=$(date +%s)
"${ROOT}/scripts/keda-platform.sh"
# shellcheck source=/dev/null
. "${PLATFORM_CACHE}/keda-platform.env"
# The pinned kubectl that renders the overlays everywhere (scripts/lint-requirements.txt).
KUBECTL="$("${ROOT}/scripts/lint-tools.sh")/kubectl"
k() { "${KUBECTL}" "$@"; }

work="$(mktemp -d "${TMPDIR:-/tmp}/test-keda.XXXXXX")"
trap 'control_plane_stop; rm -rf "${work}"' EXIT
trap 'exit 130' INT TERM
out="${work}/rendered"
mkdir -p "${out}"

log "Rendering"
for target in overlays/minikube overlays/cloud monitoring; do
  k kustomize "${ROOT}/manifests/${target}" >"${out}/${target##*/}.yaml"
done
# The platform objects deploy-minikube.sh applies, as it applies them (the image filled in).
sed "s|POSTGRES_IMAGE_SET_BY_DEPLOY_SCRIPT|${POSTGRES_IMAGE}|" "${ROOT}/manifests/platform/minikube/postgres.yaml" \
  >"${out}/platform-postgres.yaml"
cp "${ROOT}/manifests/platform/minikube/kafka-exporter-podmonitor.yaml" "${out}/platform-kafka-exporter-podmonitor.yaml"
cp "${ROOT}/manifests/platform/minikube/kafka.yaml" "${out}/platform-kafka.yaml"
sed "s|MAILPIT_IMAGE_SET_BY_DEPLOY_SCRIPT|${MAILPIT_IMAGE}|" "${ROOT}/manifests/platform/minikube/mailpit.yaml" \
  >"${out}/platform-mailpit.yaml"
# The KafkaUsers, applied in the Kafka cluster's namespace (`kubectl apply -k manifests/kafka-users
# -n kafka`): namespace_of below.
k kustomize "${ROOT}/manifests/kafka-users" >"${out}/kafka-users.yaml"
checked=(minikube cloud monitoring platform-postgres platform-kafka-exporter-podmonitor platform-kafka platform-mailpit
  kafka-users)
# namespace_of <name of checked>: the namespace its objects without one go to, if not `default`.
namespace_of() {
  case "$1" in
    kafka-users) echo kafka ;;
  esac
}

log "Control plane"
control_plane_start "${work}/cluster"

log "CRDs"
control_plane_crds

log "Namespaces (created for real)"
namespaces="$({
  cat "${out}"/*.yaml | awk '/^kind: Namespace$/ {ns=1} /^  name:/ && ns {print $2; ns=0} /^  namespace:/ {print $2}'
  for name in "${checked[@]}"; do namespace_of "${name}"; done
} | sort -u)"
for ns in ${namespaces}; do
  k create namespace "${ns}" -o name | sed 's/^/    /' >&2
done

# server_dry_run <file> [<namespace>]: server-side apply of every object of the file (those without
# a namespace into <namespace>), dry run, strict field validation; prints the applied objects'
# names, fails if any object is rejected.
server_dry_run() {
  k apply --server-side --dry-run=server --validate=strict --field-manager=test-keda ${2:+-n "$2"} -f "$1" -o name
}

log "Server-side dry run of every rendered object"
failed=0
: >"${work}/accepted"
for name in "${checked[@]}"; do
  if server_dry_run "${out}/${name}.yaml" "$(namespace_of "${name}")" >"${work}/${name}.accepted" 2>"${work}/${name}.err"; then
    info "${name}: $(wc -l <"${work}/${name}.accepted") objects accepted"
    # Accepted with a warning (a deprecated API version): shown, not failed.
    grep -h '^Warning:' "${work}/${name}.err" | sort -u | sed 's/^/      /' >&2 || true
  else
    printf 'FAILED: %s\n' "${name}" >&2
    sed 's/^/    /' "${work}/${name}.err" >&2
    failed=1
  fi
  cat "${work}/${name}.accepted" >>"${work}/accepted"
done

log "Negative check: broken copies of a ScaledObject must be rejected"
# The first rendered ScaledObject of the minikube overlay, as it is...
awk 'BEGIN {RS = "\n---\n"} /\nkind: ScaledObject\n/ {print; exit}' "${out}/minikube.yaml" >"${work}/so.yaml"
grep -q '^  pollingInterval: [0-9]' "${work}/so.yaml" || die "the ScaledObject has no spec.pollingInterval to break"
server_dry_run "${work}/so.yaml" >/dev/null || die "the unbroken ScaledObject is not accepted"
# ...with a wrong type, then with an unknown (misspelled) field.
sed 's/^  pollingInterval: .*/  pollingInterval: "15s"/' "${work}/so.yaml" >"${work}/so-wrong-type.yaml"
sed 's/^spec:$/spec:\n  pollingIntervall: 15/' "${work}/so.yaml" >"${work}/so-unknown-field.yaml"
for broken in so-wrong-type so-unknown-field; do
  if server_dry_run "${work}/${broken}.yaml" >/dev/null 2>"${work}/${broken}.err"; then
    printf 'FAILED: %s was accepted: the dry run does not check schemas\n' "${broken}" >&2
    failed=1
  else
    info "${broken}: rejected: $(head -c 300 "${work}/${broken}.err")"
  fi
done

log "Negative check: broken copies of a KafkaUser must be rejected"
# The first rendered KafkaUser, as it is...
awk 'BEGIN {RS = "\n---\n"} /\nkind: KafkaUser\n/ {print; exit}' "${out}/kafka-users.yaml" >"${work}/ku.yaml"
grep -q '^      - Describe$' "${work}/ku.yaml" || die "the KafkaUser has no ACL operation Describe to break"
server_dry_run "${work}/ku.yaml" kafka >/dev/null 2>"${work}/ku.err" || die "the unbroken KafkaUser is not accepted: $(cat "${work}/ku.err")"
# ...with an ACL operation that Kafka does not have (the CRD's enum), then with an unknown
# (misspelled) field: a CRD that preserved unknown fields would take both.
sed 's/^      - Describe$/      - Consume/' "${work}/ku.yaml" >"${work}/ku-unknown-operation.yaml"
sed 's/^  authorization:$/  authorisation:/' "${work}/ku.yaml" >"${work}/ku-unknown-field.yaml"
for broken in ku-unknown-operation ku-unknown-field; do
  cmp -s "${work}/ku.yaml" "${work}/${broken}.yaml" && die "${broken}: the sed above broke nothing"
  if server_dry_run "${work}/${broken}.yaml" kafka >/dev/null 2>"${work}/${broken}.err"; then
    printf 'FAILED: %s was accepted: the dry run does not check the KafkaUser schema\n' "${broken}" >&2
    failed=1
  else
    info "${broken}: rejected: $(grep -v '^Warning:' "${work}/${broken}.err" | head -c 300)"
  fi
done

log "Negative check: broken copies of the MCPServer must be rejected"
# The rendered MCPServer of the minikube overlay (dapr-components/k8s/mcpserver.yaml), as it is...
awk 'BEGIN {RS = "\n---\n"} /\nkind: MCPServer\n/ {print; exit}' "${out}/minikube.yaml" >"${work}/mcp.yaml"
grep -q '^    streamableHTTP:$' "${work}/mcp.yaml" || die "the minikube overlay renders no MCPServer with spec.endpoint.streamableHTTP"
server_dry_run "${work}/mcp.yaml" >/dev/null 2>"${work}/mcp.err" || die "the unbroken MCPServer is not accepted: $(cat "${work}/mcp.err")"
# ...with a second transport (the CRD's CEL rule: exactly one of streamableHTTP, sse, stdio),
# then with an unknown (misspelled) field.
sed 's|^    streamableHTTP:$|    sse:\n      url: http://task-api.todo.svc.cluster.local/sse\n    streamableHTTP:|' "${work}/mcp.yaml" >"${work}/mcp-two-transports.yaml"
sed 's|^      timeout: |      timeOut: |' "${work}/mcp.yaml" >"${work}/mcp-unknown-field.yaml"
for broken in mcp-two-transports mcp-unknown-field; do
  cmp -s "${work}/mcp.yaml" "${work}/${broken}.yaml" && die "${broken}: the sed above broke nothing"
  if server_dry_run "${work}/${broken}.yaml" >/dev/null 2>"${work}/${broken}.err"; then
    printf 'FAILED: %s was accepted: the dry run does not check the MCPServer schema\n' "${broken}" >&2
    failed=1
  else
    info "${broken}: rejected: $(grep -v '^Warning:' "${work}/${broken}.err" | head -c 300)"
  fi
done

log "Accepted by kube-apiserver ${KUBERNETES_VERSION}, per kind"
sed 's|/.*||' "${work}/accepted" | sort | uniq -c | sort -k2 | sed 's/^ */    /' >&2
info "total: $(wc -l <"${work}/accepted") objects"

[ "${failed}" -eq 0 ] || die "some objects were rejected (above)"

# The KEDA operator, out of cluster as KEDA's `make run` runs it, against this API server; the
# minikube overlay applied for real; every ScaledObject must get a Ready condition, True, or False
# only because no Kafka broker runs here (the scaler dials it after parsing the trigger).
if [ "${RUN_KEDA_OPERATOR:-1}" = 1 ]; then
  log "KEDA operator ${KEDA_VERSION} (out of cluster)"
  keda_operator_start "${work}"

  log "The minikube overlay applied for real; the ScaledObjects' conditions"
  # The ScaledObjects go in last, once the Secrets they need exist: KEDA reconciles a
  # ScaledObject at once, and a Ready=False for a Secret created a moment later would stand until
  # its next retry.
  split_kind='BEGIN { RS = "\n---\n"; ORS = "\n---\n" } (/(^|\n)kind: ScaledObject(\n|$)/) == want'
  awk -v want=0 "${split_kind}" "${out}/minikube.yaml" >"${work}/minikube-rest.yaml"
  awk -v want=1 "${split_kind}" "${out}/minikube.yaml" >"${work}/minikube-scaledobjects.yaml"
  grep -q '^kind: ScaledObject$' "${work}/minikube-scaledobjects.yaml" || die "the minikube overlay renders no ScaledObject"
  k apply --server-side --field-manager=test-keda -f "${work}/minikube-rest.yaml" >/dev/null
  # The Secrets the deploy scripts would create (KEDA resolves the scale target's env and the
  # TriggerAuthentications' references): every referenced key, with a random test value.
  # shellcheck disable=SC2016 # jsonpath, not shell
  refs="$({
    k get deployments -n todo -o jsonpath='{range .items[*].spec.template.spec}{range .containers[*].env[*]}{.valueFrom.secretKeyRef.name}{" "}{.valueFrom.secretKeyRef.key}{"\n"}{end}{range .initContainers[*].env[*]}{.valueFrom.secretKeyRef.name}{" "}{.valueFrom.secretKeyRef.key}{"\n"}{end}{end}'
    k get triggerauthentications -n todo -o jsonpath='{range .items[*].spec.secretTargetRef[*]}{.name}{" "}{.key}{"\n"}{end}'
  } | awk 'NF == 2' | sort -u)"
  for secret in $(printf '%s\n' "${refs}" | cut -d' ' -f1 | sort -u); do
    printf '%s\n' "${refs}" | awk -v s="${secret}" '$1 == s {print $2}' |
      while read -r key; do printf '%s=%s\n' "${key}" "$(random_secret 16)"; done |
      k create secret generic "${secret}" -n todo --from-env-file=/dev/stdin -o name >/dev/null
  done
  info "$(printf '%s\n' "${refs}" | cut -d' ' -f1 | sort -u | wc -l) Secrets created with test values"
  k apply --server-side --field-manager=test-keda -f "${work}/minikube-scaledobjects.yaml" >/dev/null
  scaledobjects="$(k get scaledobjects -n todo -o name)"
  waited=0
  while [ -n "$(k get scaledobjects -n todo -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | awk 'NF < 2 || $2 == "Unknown"')" ]; do
    sleep 1
    waited=$((waited + 1))
    if [ "${waited}" -ge 120 ]; then
      k get scaledobjects -n todo >&2
      tail -n 30 "${work}/keda.log" >&2
      die "not every ScaledObject got a Ready condition True or False in 120 s"
    fi
  done
  info "every ScaledObject's Ready condition settled after ${waited} s"
  k get scaledobjects -n todo -o jsonpath='{range .items[*]}{.metadata.name}{"\t"}{.status.conditions[?(@.type=="Ready")].status}{"\t"}{.status.conditions[?(@.type=="Ready")].reason}{"\t"}{.status.conditions[?(@.type=="Ready")].message}{"\n"}{end}' \
    >"${work}/ready.tsv"
  sed 's/^/    /' "${work}/ready.tsv" >&2
  # Not ready is expected only for want of a Kafka broker (none runs here): KEDA parses a kafka
  # trigger's metadata before it dials, so that error also means the trigger was understood.
  # Any other reason (a metadata, target or authentication error) fails (a message's continuation
  # lines have no status column and are only printed).
  if awk -F '\t' '($2 == "False" || $2 == "Unknown") && $4 !~ /error creating kafka client: .*(no such host|run out of available brokers)/' \
    "${work}/ready.tsv" | grep . >&2; then
    die "the KEDA operator refused the ScaledObjects above for another reason than the missing Kafka broker"
  fi
  info "$(printf '%s\n' "${scaledobjects}" | wc -l) ScaledObjects, $(k get hpa -n todo -o name | wc -l) HPAs created by KEDA: $(k get hpa -n todo -o name | tr '\n' ' ')"
fi
log "test-keda passed in $(($(date +%s) - started)) s"
