#!/usr/bin/env bash
# Deploys todo-functions to a managed cluster with managed Kafka (SASL/TLS) and PostgreSQL:
# builds and pushes the images (unless BUILD_IMAGES=0), installs/upgrades the pinned Dapr and
# KEDA, writes the Secrets from the environment, creates the Kafka topics, applies the cloud
# overlay and waits for the rollout.
#
#   REGISTRY=ghcr.io/acme/todo IMAGE_TAG=$(git rev-parse HEAD) KUBE_CONTEXT=prod \
#   KAFKA_BROKERS=... KAFKA_USERNAME=... KAFKA_PASSWORD=... \
#   POSTGRES_CONNECTION_STRING=... JWT_SECRET=... API_HOST=todo.example.com \
#   make deploy-cloud
#
# Required environment (connection secrets come from here, never from a file in the repo):
#   REGISTRY                    image repository prefix: images are $REGISTRY/<function>
#   IMAGE_TAG                   image tag (a commit SHA or a release version; not `latest`)
#   KUBE_CONTEXT                kubeconfig context of the target cluster
#   KAFKA_BROKERS               host:port[,host:port] of the SASL/TLS listener
#   KAFKA_USERNAME, KAFKA_PASSWORD          SASL credentials
#   POSTGRES_CONNECTION_STRING  e.g. "host=... port=5432 user=todo password=... dbname=todo sslmode=verify-full"
#   JWT_SECRET                  task-api's HS256 key, at least 32 bytes
#   API_HOST                    public host name of task-api (DNS pointing at the ingress)
# Optional:
#   DAPR_API_TOKEN, APP_API_TOKEN   set to rotate; otherwise generated once and kept
#   JWT_ISSUER, JWT_AUDIENCE        required token claims (empty: not checked)
#   BUILD_IMAGES=0                  the images already exist (CD: CI pushed them for this commit)
#   INSTALL_PLATFORM=0              leave the Dapr and KEDA installations alone
#   DRY_RUN=1                       only render what would be applied (target/deploy/cloud.yaml)
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
load_versions

OVERLAY=manifests/overlays/cloud

log "Prerequisites"
DRY_RUN="${DRY_RUN:-0}"
if [ "${DRY_RUN}" = 1 ]; then
  BUILD_IMAGES=0
  INSTALL_PLATFORM=0
fi
require_tools "kubectl|Install kubectl: https://kubernetes.io/docs/tasks/tools/" "git|Install git."
[ "${INSTALL_PLATFORM:-1}" = 0 ] ||
  require_tools "helm|Install Helm 3.8+ (or set INSTALL_PLATFORM=0 to leave Dapr and KEDA alone): https://helm.sh/docs/intro/install/"
[ "${BUILD_IMAGES:-1}" = 0 ] ||
  require_tools "docker|Install Docker (or set BUILD_IMAGES=0 when the images are already pushed)."
require_env REGISTRY "the image repository prefix, e.g. ghcr.io/<owner>/<repo>"
require_env IMAGE_TAG "the image tag to deploy, e.g. the commit SHA CI pushed"
require_env KUBE_CONTEXT "the kubeconfig context of the target cluster (kubectl config get-contexts)"
require_env KAFKA_BROKERS "host:port of the managed Kafka's SASL/TLS listener"
require_env API_HOST "task-api's public host name"
[ "${IMAGE_TAG}" != latest ] || die "IMAGE_TAG=latest is not allowed: deploy an immutable tag"
if [ "${DRY_RUN}" != 1 ]; then
  require_env KAFKA_USERNAME "the SASL user of the managed Kafka"
  require_env KAFKA_PASSWORD "the SASL password of the managed Kafka"
  require_env POSTGRES_CONNECTION_STRING "the managed PostgreSQL connection string"
  require_env JWT_SECRET "task-api's token signing key (at least 32 bytes)"
  [ "${#JWT_SECRET}" -ge 32 ] || die "JWT_SECRET must be at least 32 bytes"
fi
if [ "${DRY_RUN}" != 1 ]; then
  kube cluster-info >/dev/null || die "cannot reach the cluster of context ${KUBE_CONTEXT}"
fi

if [ "${BUILD_IMAGES:-1}" != 0 ]; then
  log "Images ${REGISTRY}/<function>:${IMAGE_TAG}"
  IMAGE_DIGESTS_FILE="${ROOT}/target/deploy/image-digests.env"
  IMAGE_REPO="${REGISTRY}" IMAGE_TAG="${IMAGE_TAG}" PUSH=1 DIGESTS_FILE="${IMAGE_DIGESTS_FILE}" \
    "${ROOT}/scripts/images.sh"
fi
# Deploy by digest, never by a tag (a tag can be moved after the images were checked):
# IMAGE_DIGESTS_FILE has a `<function>=sha256:<hex>` line per function (CD writes it from the
# verified digests; the build above writes it from its own pushes). Required unless DRY_RUN=1.
if [ "${DRY_RUN}" != 1 ]; then
  require_env IMAGE_DIGESTS_FILE "lines <function>=sha256:<hex> of the images to deploy (CD writes it; scripts/images.sh DIGESTS_FILE too)"
  [ -r "${IMAGE_DIGESTS_FILE}" ] || die "IMAGE_DIGESTS_FILE ${IMAGE_DIGESTS_FILE} is not readable"
fi

if [ "${INSTALL_PLATFORM:-1}" != 0 ]; then
  # Three replicas of every control-plane service in the cloud.
  install_dapr_and_keda --set global.ha.enabled=true
fi

log "Rendering ${OVERLAY}"
# Values spliced into YAML: hosts and broker lists only, never free text.
[[ "${API_HOST}" =~ ^[A-Za-z0-9.-]+$ ]] || die "API_HOST must be a host name, not '${API_HOST}'"
[[ "${KAFKA_BROKERS}" =~ ^[A-Za-z0-9.:,_-]+$ ]] || die "KAFKA_BROKERS must be host:port[,host:port]"
yaml_string() { printf '"%s"' "$(printf '%s' "$1" | sed 's/[\\"]/\\&/g')"; }
mkdir -p "${ROOT}/target/deploy"
rendered="${ROOT}/target/deploy/cloud.yaml"
# The committed overlay with this deployment's images, endpoints and token claims; the
# settings components run again so that the new values reach every resource that carries them.
extra="$(
  images_kustomization "${REGISTRY}" "${IMAGE_TAG}" ghcr.io/todo-functions/todo-functions
  cat <<EOF
configMapGenerator:
  - name: platform-settings
    behavior: merge
    options:
      disableNameSuffixHash: true
    literals:
      - kafka-brokers=${KAFKA_BROKERS}
      - api-host=${API_HOST}
components:
  - ../../../manifests/components/platform-settings
  - ../../../manifests/components/ingress-host
patches:
  - patch: |-
      apiVersion: apps/v1
      kind: Deployment
      metadata:
        name: task-api
      spec:
        template:
          spec:
            containers:
              - name: task-api
                env:
                  - name: JWT_ISSUER
                    value: $(yaml_string "${JWT_ISSUER:-}")
                  - name: JWT_AUDIENCE
                    value: $(yaml_string "${JWT_AUDIENCE:-}")
EOF
)"
render_overlay "${OVERLAY}" "${rendered}" "${extra}"
if grep -q -e 'example\.invalid' -e 'set-by-deploy-cloud' "${rendered}"; then
  die "the rendered overlay still contains a placeholder (image, broker or host): check ${OVERLAY}"
fi

if [ "${DRY_RUN}" = 1 ]; then
  log "Dry run: rendered ${rendered}, nothing applied"
  exit 0
fi

log "Secrets (namespace ${NAMESPACE})"
kube apply -f "${ROOT}/manifests/base/namespace.yaml" >/dev/null
apply_secret postgres "connectionString=${POSTGRES_CONNECTION_STRING}"
apply_secret kafka "username=${KAFKA_USERNAME}" "password=${KAFKA_PASSWORD}"
apply_secret task-api-jwt "secret=${JWT_SECRET}"
if [ -n "${DAPR_API_TOKEN:-}" ]; then
  apply_secret dapr-api-token "token=${DAPR_API_TOKEN}"
else
  ensure_secret dapr-api-token token "$(random_secret 32)"
fi
if [ -n "${APP_API_TOKEN:-}" ]; then
  apply_secret app-api-token "token=${APP_API_TOKEN}"
else
  ensure_secret app-api-token token "$(random_secret 32)"
fi

run_topics_job "${rendered}"

log "Applying Dapr components, KEDA objects and the functions"
kube apply -f "${rendered}"
wait_for_rollouts

log "Deployed ${IMAGE_TAG} to ${KUBE_CONTEXT}"
kube get deployments,scaledobjects,ingress -n "${NAMESPACE}"
info "task-api: https://${API_HOST}/healthz"
