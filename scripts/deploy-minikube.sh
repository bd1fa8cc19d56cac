#!/usr/bin/env bash
# Deploys todo-functions to a local cluster: minikube (default) or kind (CLUSTER=kind, used by
# CI's end-to-end job). Installs pinned Dapr, KEDA, Strimzi Kafka and CloudNativePG PostgreSQL,
# builds the images into the cluster, creates the Kafka topics, applies the Dapr components,
# KEDA objects and the minikube overlay, waits, and smoke-tests task-api.
#
#   make deploy-minikube                  # or: scripts/deploy-minikube.sh
#   make deploy-minikube MONITORING=1     # plus kube-prometheus-stack and manifests/monitoring
#
# Environment:
#   CLUSTER           minikube (default) or kind
#   MINIKUBE_PROFILE  minikube profile (default minikube); started if not running, with
#                     MINIKUBE_CPUS (4) and MINIKUBE_MEMORY (8g)
#   KIND_CLUSTER      kind cluster name (default todo); the cluster must exist
#   MONITORING=1      install kube-prometheus-stack and the monitoring manifests
#   SKIP_IMAGES=1     do not build/load images (they are already in the cluster)
#   SKIP_SMOKE=1      skip the smoke test
#   SMTP_HOST, SMTP_PORT, SMTP_USER, SMTP_PASSWORD, SMTP_FROM   the notifier's mail relay
#                     (Secret `smtp`); unset: the Mailpit sink installed in namespace `mail`
#                     (port 1025, no login, from reminders@todo.localhost). The minikube
#                     NetworkPolicy allow-smtp-relay lets the notifier reach namespace `mail` on
#                     1025 only: another relay needs that policy changed too
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
load_versions

CLUSTER="${CLUSTER:-minikube}"
MINIKUBE_PROFILE="${MINIKUBE_PROFILE:-minikube}"
KIND_CLUSTER="${KIND_CLUSTER:-todo}"
OVERLAY=manifests/overlays/minikube

log "Prerequisites"
common=(
  "kubectl|Install kubectl: https://kubernetes.io/docs/tasks/tools/"
  "helm|Install Helm 3.8+ (OCI charts): https://helm.sh/docs/intro/install/"
  "docker|Install Docker: https://docs.docker.com/engine/install/"
  "git|Install git (image tags are commit SHAs)."
  "curl|Install curl (smoke test)."
  "jq|Install jq (smoke test): https://jqlang.org/download/"
)
case "${CLUSTER}" in
  minikube)
    require_tools "minikube|Install minikube: https://minikube.sigs.k8s.io/docs/start/" "${common[@]}"
    KUBE_CONTEXT="${MINIKUBE_PROFILE}"
    ;;
  kind)
    require_tools "kind|Install kind ${KIND_VERSION}: https://kind.sigs.k8s.io/docs/user/quick-start/" "${common[@]}"
    KUBE_CONTEXT="kind-${KIND_CLUSTER}"
    ;;
  *) die "CLUSTER must be minikube or kind, not '${CLUSTER}'" ;;
esac
export KUBE_CONTEXT
docker info >/dev/null 2>&1 || die "docker is installed but its daemon is not reachable (is Docker running?)"

if [ "${CLUSTER}" = minikube ]; then
  if ! minikube status -p "${MINIKUBE_PROFILE}" >/dev/null 2>&1; then
    log "Starting minikube (profile ${MINIKUBE_PROFILE}, Kubernetes ${MINIKUBE_KUBERNETES_VERSION})"
    minikube start -p "${MINIKUBE_PROFILE}" \
      --kubernetes-version="${MINIKUBE_KUBERNETES_VERSION}" \
      --cpus="${MINIKUBE_CPUS:-4}" --memory="${MINIKUBE_MEMORY:-8g}"
  fi
else
  kind get clusters 2>/dev/null | grep -qx "${KIND_CLUSTER}" ||
    die "kind cluster '${KIND_CLUSTER}' not found: kind create cluster --name ${KIND_CLUSTER} --image ${KIND_NODE_IMAGE}"
fi
kube cluster-info >/dev/null || die "cannot reach the cluster of context ${KUBE_CONTEXT}"
server_minor="$(kube version -o json | jq -r '.serverVersion.minor' | tr -dc '0-9')"
[ "${server_minor:-0}" -ge 30 ] ||
  die "Kubernetes 1.30+ is required (native sidecars, preStop sleep); this cluster runs 1.${server_minor}"

if [ "${MONITORING:-0}" = 1 ]; then
  log "kube-prometheus-stack ${KUBE_PROMETHEUS_STACK_VERSION}"
  kube create namespace monitoring --dry-run=client -o yaml | kube apply -f - >/dev/null
  if ! kube get secret grafana-admin -n monitoring >/dev/null 2>&1; then
    printf 'admin-user=admin\nadmin-password=%s\n' "$(random_secret 16)" |
      kube create secret generic grafana-admin -n monitoring --from-env-file=/dev/stdin >/dev/null
  fi
  helmk repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update >/dev/null
  helmk upgrade --install kube-prometheus-stack prometheus-community/kube-prometheus-stack \
    --version "${KUBE_PROMETHEUS_STACK_VERSION}" --namespace monitoring \
    --values "${ROOT}/manifests/platform/kube-prometheus-stack-values.yaml" --wait --timeout 15m
fi

# One replica of each control-plane service on a laptop.
install_dapr_and_keda --set global.ha.enabled=false

log "Kafka (Strimzi ${STRIMZI_VERSION})"
helmk upgrade --install strimzi oci://quay.io/strimzi-helm/strimzi-kafka-operator \
  --version "${STRIMZI_VERSION}" --namespace kafka --create-namespace \
  --values "${ROOT}/manifests/platform/strimzi-values.yaml" --wait --timeout 10m
kube apply -f "${ROOT}/manifests/platform/minikube/kafka.yaml"
if [ "${MONITORING:-0}" = 1 ]; then
  kube apply -f "${ROOT}/manifests/platform/minikube/kafka-exporter-podmonitor.yaml"
fi

log "PostgreSQL (CloudNativePG chart ${CNPG_CHART_VERSION})"
helmk repo add cnpg https://cloudnative-pg.github.io/charts --force-update >/dev/null
helmk upgrade --install cnpg cnpg/cloudnative-pg --version "${CNPG_CHART_VERSION}" \
  --namespace cnpg-system --create-namespace --wait --timeout 10m
kube create namespace postgres --dry-run=client -o yaml | kube apply -f - >/dev/null
sed "s|POSTGRES_IMAGE_SET_BY_DEPLOY_SCRIPT|${POSTGRES_IMAGE}|" \
  "${ROOT}/manifests/platform/minikube/postgres.yaml" | kube apply -f -

info "waiting for Kafka and PostgreSQL (first start pulls images: a few minutes)"
kube wait kafka/todo-kafka -n kafka --for=condition=Ready --timeout=15m
kube wait cluster.postgresql.cnpg.io/todo-pg -n postgres --for=condition=Ready --timeout=15m

log "Secrets (namespace ${NAMESPACE})"
kube apply -f "${ROOT}/manifests/base/namespace.yaml" >/dev/null
# Generated once per cluster and kept: each function's pair of tokens between it and its
# sidecar, and the development HS256 key of task-api (`devhost dev-token` mints with it).
ensure_app_tokens
ensure_secret jwt secret "$(random_secret 32)"
# The notifier's mail relay: by default a sink in the cluster, so that reminders by email can be
# tried without sending real mail (read them in its UI, printed at the end).
if [ -z "${SMTP_HOST:-}" ]; then
  info "mail sink: Mailpit (${MAILPIT_IMAGE}) in namespace mail"
  kube create namespace mail --dry-run=client -o yaml | kube apply -f - >/dev/null
  sed "s|MAILPIT_IMAGE_SET_BY_DEPLOY_SCRIPT|${MAILPIT_IMAGE}|" \
    "${ROOT}/manifests/platform/minikube/mailpit.yaml" | kube apply -f - >/dev/null
else
  warn "SMTP_HOST=${SMTP_HOST}: the minikube NetworkPolicy allow-smtp-relay only allows namespace mail on 1025"
fi
apply_smtp_secret "${SMTP_HOST:-mailpit.mail.svc.cluster.local}" "${SMTP_PORT:-1025}" "${SMTP_USER:-}" \
  "${SMTP_PASSWORD:-}" "${SMTP_FROM:-reminders@todo.localhost}"
# PostgreSQL: CloudNativePG's superuser (enableSuperuserAccess) runs roles.sql in the Job; each
# function and KEDA get a role of their own with a generated password (scripts/lib.sh).
pg_password="$(kube get secret todo-pg-superuser -n postgres -o jsonpath='{.data.password}' | base64 -d)"
[ -n "${pg_password}" ] || die "CloudNativePG has not created Secret postgres/todo-pg-superuser yet"
ensure_postgres_role_secrets \
  "host=todo-pg-rw.postgres.svc.cluster.local port=5432 user=postgres password=${pg_password} dbname=todo sslmode=require"
unset pg_password

if [ "${SKIP_IMAGES:-0}" != 1 ]; then
  IMAGE_TAG="$(dev_image_tag)"
  log "Images (tag ${IMAGE_TAG})"
  IMAGE_REPO=todo-functions IMAGE_TAG="${IMAGE_TAG}" "${ROOT}/scripts/images.sh"
  for fn in "${FUNCTIONS[@]}"; do
    info "loading todo-functions/${fn}:${IMAGE_TAG} into ${CLUSTER}"
    if [ "${CLUSTER}" = minikube ]; then
      minikube -p "${MINIKUBE_PROFILE}" image load "todo-functions/${fn}:${IMAGE_TAG}"
    else
      kind load docker-image --name "${KIND_CLUSTER}" "todo-functions/${fn}:${IMAGE_TAG}"
    fi
  done
else
  IMAGE_TAG="${IMAGE_TAG:-dev}"
fi

log "Rendering ${OVERLAY}"
mkdir -p "${ROOT}/target/deploy"
rendered="${ROOT}/target/deploy/minikube.yaml"
# Each pod template carries the checksum of its Secrets: a changed Secret restarts its pods.
render_overlay "${OVERLAY}" "${rendered}" "$(images_kustomization todo-functions "${IMAGE_TAG}")" \
  "$(secrets_checksum_patches)"

run_topics_job "${rendered}"
run_postgres_roles_job "${rendered}"

log "Applying Dapr components, KEDA objects and the functions"
kube apply -f "${rendered}"
if [ "${MONITORING:-0}" = 1 ]; then
  kube apply -k "${ROOT}/manifests/monitoring"
fi
wait_for_rollouts

log "todo-functions is deployed"
kube get deployments,scaledobjects -n "${NAMESPACE}"
cat >&2 <<EOF

  task-api:   kubectl --context ${KUBE_CONTEXT} -n ${NAMESPACE} port-forward svc/task-api 8080:80
              then http://localhost:8080  (OpenAPI: http://localhost:8080/openapi.json)
  a token:    JWT_SECRET="\$(kubectl --context ${KUBE_CONTEXT} -n ${NAMESPACE} get secret jwt -o jsonpath='{.data.secret}' | base64 -d)" \\
                cargo run -q -p devhost -- dev-token alice
  status:     make status      logs: make logs [FUNCTION=create-task]
  mail sink:  kubectl --context ${KUBE_CONTEXT} -n mail port-forward svc/mailpit 8025:8025
              then http://localhost:8025  (reminders sent by email, when SMTP_HOST is unset)
EOF
if [ "${MONITORING:-0}" = 1 ]; then
  cat >&2 <<EOF
  grafana:    kubectl --context ${KUBE_CONTEXT} -n monitoring port-forward svc/kube-prometheus-stack-grafana 3000:80
              user admin, password: kubectl --context ${KUBE_CONTEXT} -n monitoring get secret grafana-admin -o jsonpath='{.data.admin-password}' | base64 -d
EOF
fi

if [ "${SKIP_SMOKE:-0}" != 1 ]; then
  "${ROOT}/scripts/smoke.sh"
fi
