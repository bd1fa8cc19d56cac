#!/usr/bin/env bash
# Deploys todo-functions to a managed cluster with managed Kafka (SASL/TLS) and PostgreSQL:
# builds and pushes the images (unless BUILD_IMAGES=0), installs/upgrades the pinned Dapr and
# KEDA, writes the Secrets from the environment, creates the Kafka topics, applies the cloud
# overlay and waits for the rollout.
#
#   REGISTRY=ghcr.io/acme/todo IMAGE_TAG=$(git rev-parse HEAD) KUBE_CONTEXT=prod \
#   KAFKA_BROKERS=... KAFKA_USERNAME=... KAFKA_PASSWORD=... KAFKA_EGRESS_CIDR=10.20.0.0/24 \
#   POSTGRES_CONNECTION_STRING_TASK_API=... (one per function) POSTGRES_EGRESS_CIDR=10.30.0.0/24 \
#   JWT_ISSUER=https://login.example.com/ JWT_AUDIENCE=todo-api JWT_JWKS_URL=https://... \
#   SMTP_HOST=smtp.example.com SMTP_USER=... SMTP_PASSWORD=... SMTP_FROM=reminders@example.com \
#   SMTP_EGRESS_CIDR=203.0.113.25/32 API_HOST=todo.example.com make deploy-cloud
#
# Required environment (connection secrets come from here, never from a file in the repo):
#   REGISTRY                    image repository prefix: images are $REGISTRY/<function>
#   IMAGE_TAG                   image tag (a commit SHA or a release version; not `latest`)
#   KUBE_CONTEXT                kubeconfig context of the target cluster
#   KAFKA_BROKERS               host:port[,host:port] of the SASL/TLS listener
#   KAFKA_USERNAME, KAFKA_PASSWORD   SASL credentials of the `kafka` Secret (the topics admin:
#                               the topics Job and make status)
#   KAFKA_KEDA_USERNAME, KAFKA_KEDA_PASSWORD   KEDA's own Kafka user (describe-only: it reads
#                               consumer lag), into Secret `keda-kafka`; the topics admin's with a
#                               warning when unset
#   KAFKA_PASSWORD_<FUNCTION>   per function: the SASL password of its own Kafka user (user name =
#                               app-id, ACLs in docs/deploy.md), into Secret <app-id>-kafka key
#                               `password`, which its sidecar logs in with (dapr-components/k8s/sasl)
#   KAFKA_EGRESS_CIDR           the brokers' address range (NetworkPolicy egress; one CIDR)
#   POSTGRES_CONNECTION_STRING_<FUNCTION>   per function (TASK_API, CREATE_TASK,
#                               ON_TASK_COMPLETED, FIRE_REMINDER, AUDIT_WRITER, NOTIFIER): its own
#                               database role, into Secret <app-id>-postgres. Every connection
#                               string must set sslmode=verify-full, e.g. "host=db.example.com
#                               port=5432 user=todo_task_api password=... dbname=todo
#                               sslmode=verify-full sslrootcert=system"
#   POSTGRES_EGRESS_CIDR        the database's address range (NetworkPolicy egress; one CIDR)
#   OIDC_EGRESS_CIDR            with JWT_JWKS_URL: where task-api may fetch the JWKS from on
#                               443 (one CIDR; an egress proxy's, or 0.0.0.0/0 knowingly)
#   JWT_ISSUER, JWT_AUDIENCE    the `iss` and `aud` every token must carry (task-api runs with
#                               JWT_STRICT=true and refuses to start without them)
#   JWT_JWKS_URL and/or JWT_SECRET   how tokens are verified: the OIDC provider's JWKS URL
#                               (RS256/ES256), and/or an HS256 key of at least 32 bytes
#   API_HOST                    public host name of task-api (DNS pointing at the ingress)
#   SMTP_HOST, SMTP_FROM        the notifier's mail relay (submission endpoint) and the sender
#                               address (a domain the relay may send for), into Secret `smtp`,
#                               which the `email` binding reads (dapr-components/k8s/email.yaml)
#   SMTP_EGRESS_CIDR            the relay's address range (NetworkPolicy allow-smtp-relay; one
#                               CIDR, the notifier's pod only)
# Optional:
#   POSTGRES_CONNECTION_STRING  for every function without its own string (one role for all,
#                               with a warning), and for KEDA's trigger (Secret `postgres`)
#                               unless POSTGRES_CONNECTION_STRING_KEDA is set
#   POSTGRES_CONNECTION_STRING_KEDA   KEDA's read-only role for the wake-up queries of fire-reminder
#                               and the notifier
#                               (role keda_reminders of manifests/base/postgres/roles.sql)
#   POSTGRES_ADMIN_CONNECTION_STRING  an administrator (superuser, or CREATEROLE and owner of the
#                               database): the postgres-roles Job then applies roles.sql (roles
#                               task_api, create_task, ..., keda_reminders, the tables and grants)
#                               and sets each role's password to the one in its connection string.
#                               Without it, apply roles.sql yourself (docs/deploy.md)
#   JWT_SECRET_PREVIOUS         the previous HS256 key, still accepted during a rotation
#   KAFKA_EGRESS_PORT (9093), POSTGRES_EGRESS_PORT (5432)
#   SMTP_PORT (587: STARTTLS; 465: implicit TLS), SMTP_EGRESS_PORT (SMTP_PORT)
#   SMTP_USER, SMTP_PASSWORD    the relay's login, both or neither (the binding authenticates
#                               only over TLS)
#   BUILD_IMAGES=0              the images already exist (CD: CI pushed them for this commit)
#   INSTALL_PLATFORM=0          leave the Dapr and KEDA installations alone
#   DRY_RUN=1                   only render what would be applied (target/deploy/cloud.yaml)
# Each function's Dapr token pair (Secrets <app-id>-dapr-api-token, <app-id>-app-api-token) is
# generated once and kept: delete one and deploy again to rotate it. Pods restart when a Secret
# they read has changed (a checksum annotation on each pod template, scripts/lib.sh).
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
require_env KAFKA_EGRESS_CIDR "the managed Kafka brokers' address range, e.g. 10.20.0.0/24 (NetworkPolicy egress)"
require_env POSTGRES_EGRESS_CIDR "the managed PostgreSQL's address range, e.g. 10.30.0.0/24 (NetworkPolicy egress)"
require_env SMTP_EGRESS_CIDR "the notifier's SMTP relay's address range, e.g. 203.0.113.25/32 (NetworkPolicy egress)"
# Tokens: a production deployment checks who issued a token and for whom (task-api's JWT_STRICT).
require_env JWT_ISSUER "the issuer (iss) of the tokens task-api accepts, e.g. your OIDC provider's issuer URL"
require_env JWT_AUDIENCE "the audience (aud) the tokens must name, e.g. the API's identifier at your OIDC provider"
[ -n "${JWT_JWKS_URL:-}" ] || [ -n "${JWT_SECRET:-}" ] ||
  die "set JWT_JWKS_URL (your OIDC provider's JWKS URL, RS256/ES256) and/or JWT_SECRET (an HS256 key of at least 32 bytes): task-api needs a way to verify tokens"
[ "${IMAGE_TAG}" != latest ] || die "IMAGE_TAG=latest is not allowed: deploy an immutable tag"

# Values spliced into YAML are checked first (before anything is built or changed): hosts,
# broker lists, CIDRs and ports by shape; the token settings are quoted.
[[ "${API_HOST}" =~ ^[A-Za-z0-9.-]+$ ]] || die "API_HOST must be a host name, not '${API_HOST}'"
[[ "${KAFKA_BROKERS}" =~ ^[A-Za-z0-9.:,_-]+$ ]] || die "KAFKA_BROKERS must be host:port[,host:port]"
KAFKA_EGRESS_PORT="${KAFKA_EGRESS_PORT:-9093}"
POSTGRES_EGRESS_PORT="${POSTGRES_EGRESS_PORT:-5432}"
SMTP_PORT="${SMTP_PORT:-587}"
SMTP_EGRESS_PORT="${SMTP_EGRESS_PORT:-${SMTP_PORT}}"
# task-api's egress to the OIDC provider's JWKS (443). Without a JWKS URL nothing is needed: the
# overlay's placeholder range matches nothing.
if [ -n "${JWT_JWKS_URL:-}" ]; then
  require_env OIDC_EGRESS_CIDR "the address range task-api may fetch JWT_JWKS_URL from on 443 (NetworkPolicy egress)"
fi
OIDC_EGRESS_CIDR="${OIDC_EGRESS_CIDR:-192.0.2.1/32}"
case "${OIDC_EGRESS_CIDR}" in
  0.0.0.0/0 | ::/0) warn "OIDC_EGRESS_CIDR=${OIDC_EGRESS_CIDR} lets task-api reach every address on 443" ;;
esac
[[ "${OIDC_EGRESS_CIDR}" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$ || "${OIDC_EGRESS_CIDR}" =~ ^[0-9A-Fa-f:]+/[0-9]{1,3}$ ]] ||
  die "OIDC_EGRESS_CIDR must be one CIDR (for example 10.40.0.0/24), not '${OIDC_EGRESS_CIDR}'"
for var in KAFKA_EGRESS_CIDR POSTGRES_EGRESS_CIDR SMTP_EGRESS_CIDR; do
  [[ "${!var}" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$ || "${!var}" =~ ^[0-9A-Fa-f:]+/[0-9]{1,3}$ ]] ||
    die "${var} must be one CIDR (for example 10.20.0.0/24), not '${!var}'"
  case "${!var}" in
    192.0.2.* | 198.51.100.* | 203.0.113.*)
      die "${var}=${!var} is a documentation range (the overlay's placeholder): set your service's address range"
      ;;
    0.0.0.0/0 | ::/0) warn "${var}=${!var} allows egress to every address on that port" ;;
  esac
done
for var in KAFKA_EGRESS_PORT POSTGRES_EGRESS_PORT SMTP_PORT SMTP_EGRESS_PORT; do
  { [[ "${!var}" =~ ^[0-9]{1,5}$ ]] && [ "${!var}" -ge 1 ] && [ "${!var}" -le 65535 ]; } ||
    die "${var} must be a port number, not '${!var}'"
done
if [ -n "${JWT_JWKS_URL:-}" ]; then
  [[ "${JWT_JWKS_URL}" =~ ^https://[^[:space:]\"]+$ ]] || die "JWT_JWKS_URL must be an https:// URL"
fi
for var in JWT_ISSUER JWT_AUDIENCE; do
  [[ "${!var}" =~ ^[^[:space:]\"\\]+$ ]] || die "${var} must not contain spaces, quotes or backslashes"
done
for var in JWT_SECRET JWT_SECRET_PREVIOUS; do
  value="${!var:-}"
  [ -z "${value}" ] || [ "${#value}" -ge 32 ] || die "${var} must be at least 32 bytes"
done
unset value

# upper_name create-task -> CREATE_TASK: the suffix of a function's environment variables.
upper_name() { printf '%s' "$1" | tr 'a-z-' 'A-Z_'; }
# pg_var <app-id>: the variable holding the function's connection string.
pg_var() {
  local var
  var="POSTGRES_CONNECTION_STRING_$(upper_name "$1")"
  if [ -n "${!var:-}" ]; then
    echo "${var}"
  else
    echo POSTGRES_CONNECTION_STRING
  fi
}
if [ "${DRY_RUN}" != 1 ]; then
  require_env KAFKA_USERNAME "the SASL user of the managed Kafka"
  require_env KAFKA_PASSWORD "the SASL password of the managed Kafka"
  require_env SMTP_HOST "the notifier's mail relay, e.g. smtp.example.com (its email binding)"
  require_env SMTP_FROM "the sender of reminder mails, e.g. reminders@example.com"
  for fn in "${FUNCTIONS[@]}"; do
    require_env "KAFKA_PASSWORD_$(upper_name "${fn}")" "${fn}'s own Kafka password (its sidecar logs in as user ${fn})"
  done
  # Every database connection verifies the server (sslmode=verify-full): checked before
  # anything changes in the cluster.
  shared=()
  for fn in "${FUNCTIONS[@]}"; do
    var="$(pg_var "${fn}")"
    if [ "${var}" = POSTGRES_CONNECTION_STRING ]; then
      require_env POSTGRES_CONNECTION_STRING \
        "set POSTGRES_CONNECTION_STRING_$(upper_name "${fn}") (${fn}'s own database role) or POSTGRES_CONNECTION_STRING"
      shared+=("${fn}")
    fi
    require_verify_full "${var}" "${!var}"
  done
  [ "${#shared[@]}" -eq 0 ] ||
    warn "no connection string of their own for: ${shared[*]}; they share POSTGRES_CONNECTION_STRING's database role"
  if [ -n "${POSTGRES_CONNECTION_STRING_KEDA:-}" ]; then
    require_verify_full POSTGRES_CONNECTION_STRING_KEDA "${POSTGRES_CONNECTION_STRING_KEDA}"
  else
    require_env POSTGRES_CONNECTION_STRING \
      "set POSTGRES_CONNECTION_STRING_KEDA (KEDA's read-only role) or POSTGRES_CONNECTION_STRING"
    require_verify_full POSTGRES_CONNECTION_STRING "${POSTGRES_CONNECTION_STRING}"
  fi
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

yaml_string() { printf '"%s"' "$(printf '%s' "$1" | sed 's/[\\"]/\\&/g')"; }
mkdir -p "${ROOT}/target/deploy"
rendered="${ROOT}/target/deploy/cloud.yaml"

# render [kustomization text]: the committed overlay with this deployment's images, endpoints
# and token settings; the settings components run again so that the new values reach every
# resource that carries them.
render() {
  local extra
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
      - kafka-egress-cidr=${KAFKA_EGRESS_CIDR}
      - kafka-egress-port=${KAFKA_EGRESS_PORT}
      - postgres-egress-cidr=${POSTGRES_EGRESS_CIDR}
      - postgres-egress-port=${POSTGRES_EGRESS_PORT}
      - oidc-egress-cidr=${OIDC_EGRESS_CIDR}
      - smtp-egress-cidr=${SMTP_EGRESS_CIDR}
      - smtp-egress-port=${SMTP_EGRESS_PORT}
      - $(yaml_string "jwt-issuer=${JWT_ISSUER}")
      - $(yaml_string "jwt-audience=${JWT_AUDIENCE}")
      - $(yaml_string "jwt-jwks-url=${JWT_JWKS_URL:-}")
components:
  - ../../../manifests/components/platform-settings
  - ../../../manifests/components/ingress-host
  - ../../../manifests/components/egress
EOF
    printf '%s\n' "$@"
  )"
  log "Rendering ${OVERLAY}"
  render_overlay "${OVERLAY}" "${rendered}" "${extra}"
  if grep -q -e 'example\.invalid' -e 'set-by-deploy-cloud' "${rendered}"; then
    die "the rendered overlay still contains a placeholder (image, broker, host or token issuer): check ${OVERLAY}"
  fi
}

if [ "${DRY_RUN}" = 1 ]; then
  render
  log "Dry run: rendered ${rendered}, nothing applied"
  exit 0
fi

log "Secrets (namespace ${NAMESPACE})"
kube apply -f "${ROOT}/manifests/base/namespace.yaml" >/dev/null
for fn in "${FUNCTIONS[@]}"; do
  var="$(pg_var "${fn}")"
  # `password`: what the postgres-roles Job sets on the role (roles.sql, psql \getenv).
  apply_secret "${fn}-postgres" "connectionString=${!var}" "password=$(connection_password "${!var}")"
  var="KAFKA_PASSWORD_$(upper_name "${fn}")"
  apply_secret "${fn}-kafka" "password=${!var}"
done
# KEDA's postgresql triggers (fire-reminder's and the notifier's wake-up queries), and the
# shared Kafka user.
keda_pg="${POSTGRES_CONNECTION_STRING_KEDA:-${POSTGRES_CONNECTION_STRING}}"
apply_secret keda-postgres "connectionString=${keda_pg}" "password=$(connection_password "${keda_pg}")"
unset keda_pg
apply_secret kafka "username=${KAFKA_USERNAME}" "password=${KAFKA_PASSWORD}"
if [ -z "${KAFKA_KEDA_USERNAME:-}" ] || [ -z "${KAFKA_KEDA_PASSWORD:-}" ]; then
  warn "KAFKA_KEDA_USERNAME/KAFKA_KEDA_PASSWORD are not set: KEDA reads lag as the topics admin (give it the describe-only \`keda\` user)"
fi
apply_secret keda-kafka "username=${KAFKA_KEDA_USERNAME:-${KAFKA_USERNAME}}" \
  "password=${KAFKA_KEDA_PASSWORD:-${KAFKA_PASSWORD}}"
# task-api's HS256 keys. Server-side apply drops a key this script no longer gives (the
# previous one once a rotation is over); empty when only the JWKS is used (both keys are
# optional in the pod).
jwt=()
[ -z "${JWT_SECRET:-}" ] || jwt+=("secret=${JWT_SECRET}")
[ -z "${JWT_SECRET_PREVIOUS:-}" ] || jwt+=("previous=${JWT_SECRET_PREVIOUS}")
apply_secret jwt "${jwt[@]}"
unset jwt
# The notifier's mail relay (checked: host, port, both or neither of user and password, one
# sender address).
apply_smtp_secret "${SMTP_HOST:-}" "${SMTP_PORT}" "${SMTP_USER:-}" "${SMTP_PASSWORD:-}" "${SMTP_FROM:-}"
ensure_app_tokens

# Rendered after the Secrets: each pod template carries the checksum of its Secrets, so the
# apply below restarts exactly the functions whose Secrets changed.
render "$(secrets_checksum_patches)"

run_topics_job "${rendered}"
if [ -n "${POSTGRES_ADMIN_CONNECTION_STRING:-}" ]; then
  apply_secret postgres-admin "connectionString=${POSTGRES_ADMIN_CONNECTION_STRING}"
  run_postgres_roles_job "${rendered}"
else
  warn "POSTGRES_ADMIN_CONNECTION_STRING is not set: apply manifests/base/postgres/roles.sql as an administrator yourself"
fi

log "Applying Dapr components, KEDA objects and the functions"
kube apply -f "${rendered}"
wait_for_rollouts

log "Deployed ${IMAGE_TAG} to ${KUBE_CONTEXT}"
kube get deployments,scaledobjects,ingress -n "${NAMESPACE}"
info "task-api: https://${API_HOST}/healthz (REST: /v1/tasks, MCP for AI agents: https://${API_HOST}/mcp)"
