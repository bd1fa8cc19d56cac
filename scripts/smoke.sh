#!/usr/bin/env bash
# Smoke test and demo scenario against a deployed todo-functions, through task-api only
# (kubectl port-forward, so it works on any cluster without an Ingress).
#
#   scripts/smoke.sh                    # health, create + read a task, its audit trail appears
#                                       # (audit-writer woken from zero by KEDA)
#   scripts/smoke.sh --scenario         # the demo scenario: a monthly task whose reminder fires,
#                                       # completion, next occurrence, its reminder, audit trail
#   scripts/smoke.sh --scale-to-zero    # then: a worker scales back to zero after idling
#   SMOKE_EMAIL=me@example.com scripts/smoke.sh --scenario
#                                       # also: the fired reminder is mailed there by the
#                                       # notifier (on minikube the Mailpit sink catches it)
#
# Environment: KUBE_CONTEXT (default: current context), STEP_TIMEOUT seconds per asynchronous
# step (default 240: cold starts include KEDA's 15 s polling and a sidecar start), DEVHOST (the
# devhost binary that mints the test user's token; default target/{release,debug}/devhost, else
# `cargo run -p devhost`). The token is minted here, with the HS256 key of the cluster's `jwt`
# Secret: the images carry no token minting command.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

SCENARIO=0
SCALE_TO_ZERO=0
for arg in "$@"; do
  case "${arg}" in
    --scenario) SCENARIO=1 ;;
    --scale-to-zero) SCALE_TO_ZERO=1 ;;
    *) die "unknown argument ${arg} (--scenario, --scale-to-zero)" ;;
  esac
done
STEP_TIMEOUT="${STEP_TIMEOUT:-240}"
require_tools "kubectl|Install kubectl: https://kubernetes.io/docs/tasks/tools/" \
  "curl|Install curl." "jq|Install jq: https://jqlang.org/download/"

# RFC 3339 UTC for <seconds from now>, with GNU or BSD date.
iso_in() {
  local at=$(($(date +%s) + $1))
  date -u -d "@${at}" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || date -u -r "${at}" +%Y-%m-%dT%H:%M:%SZ
}

log "Smoke test (namespace ${NAMESPACE})"
port="${SMOKE_PORT:-18080}"
kube port-forward -n "${NAMESPACE}" svc/task-api "${port}:80" >/dev/null 2>&1 &
forward_pid=$!
trap 'kill "${forward_pid}" 2>/dev/null || true' EXIT
base="http://127.0.0.1:${port}"
for _ in $(seq 1 30); do
  curl -fsS "${base}/healthz" >/dev/null 2>&1 && break
  sleep 1
done
curl -fsS "${base}/healthz" >/dev/null || die "task-api does not answer ${base}/healthz through port-forward"
info "GET /healthz: ok"

user="smoke-$(random_secret 4)"
if [ -n "${DEVHOST:-}" ]; then
  devhost=("${DEVHOST}")
elif [ -x "${ROOT}/target/release/devhost" ]; then
  devhost=("${ROOT}/target/release/devhost")
elif [ -x "${ROOT}/target/debug/devhost" ]; then
  devhost=("${ROOT}/target/debug/devhost")
elif command -v cargo >/dev/null 2>&1; then
  devhost=(cargo run -q --manifest-path "${ROOT}/Cargo.toml" -p devhost --)
else
  die "no devhost to mint a token with: build it (cargo build -p devhost) or set DEVHOST"
fi
# The key and the claims task-api checks, from the cluster; the key only ever lives in this
# process's environment and devhost's.
jwt_secret="$(kube get secret jwt -n "${NAMESPACE}" -o jsonpath='{.data.secret}' | base64 -d)"
[ -n "${jwt_secret}" ] ||
  die "Secret ${NAMESPACE}/jwt has no HS256 key \`secret\` (a JWKS-only deployment): smoke-test with a token from your identity provider"
setting() { kube get configmap platform-settings -n "${NAMESPACE}" -o jsonpath="{.data.$1}"; }
token="$(JWT_SECRET="${jwt_secret}" JWT_ISSUER="$(setting jwt-issuer)" JWT_AUDIENCE="$(setting jwt-audience)" \
  "${devhost[@]}" dev-token "${user}" --ttl-hours 1)"
unset jwt_secret
[ -n "${token}" ] || die "could not mint a development token with devhost dev-token"

# api <method> <path> [json body]: prints the body, fails on a non-2xx answer.
api() {
  local method="$1" path="$2" body="${3:-}" out status
  out="$(mktemp)"
  if [ -n "${body}" ]; then
    status="$(curl -sS -o "${out}" -w '%{http_code}' -X "${method}" "${base}${path}" \
      -H "authorization: Bearer ${token}" -H 'content-type: application/json' --data "${body}")"
  else
    status="$(curl -sS -o "${out}" -w '%{http_code}' -X "${method}" "${base}${path}" \
      -H "authorization: Bearer ${token}")"
  fi
  if [ "${status}" -lt 200 ] || [ "${status}" -ge 300 ]; then
    cat "${out}" >&2
    rm -f "${out}"
    die "${method} ${path} answered ${status}"
  fi
  cat "${out}"
  rm -f "${out}"
}

# eventually <what> <command...>: retries the command (which prints a non-empty result when
# done) every 3 s for STEP_TIMEOUT seconds.
eventually() {
  local what="$1" waited=0 result
  shift
  while [ "${waited}" -lt "${STEP_TIMEOUT}" ]; do
    result="$("$@" 2>/dev/null || true)"
    if [ -n "${result}" ]; then
      printf '%s' "${result}"
      return 0
    fi
    sleep 3
    waited=$((waited + 3))
  done
  die "${what}: not within ${STEP_TIMEOUT}s (make status; make logs)"
}

if [ "${SCENARIO}" = 1 ] && [ -n "${SMOKE_EMAIL:-}" ]; then
  api PUT /v1/me/notifications "$(jq -n --arg email "${SMOKE_EMAIL}" '{email: {address: $email}}')" >/dev/null
  info "PUT /v1/me/notifications: reminders by email to ${SMOKE_EMAIL}"
fi

label="Smoke test $(random_secret 4)"
reminder_at="$(iso_in 30)"
body="$(jq -n --arg title "${label}" --arg due "$(iso_in 86400)" --arg at "${reminder_at}" '{
  title: $title, description: "Created by scripts/smoke.sh", priority: "high", tags: ["smoke"],
  due: $due, time_zone: "UTC", reminder: {at: $at},
  recurrence: {rule: "FREQ=MONTHLY", mode: "strict"}}')"
task="$(api POST /v1/tasks "${body}")"
id="$(jq -r .id <<<"${task}")"
info "POST /v1/tasks: created ${id} (reminder at ${reminder_at})"
api GET "/v1/tasks/${id}" | jq -e --arg id "${id}" '.id == $id' >/dev/null
info "GET /v1/tasks/${id}: ok"

audit_has() { api GET "/v1/tasks/$1/audit" | jq -r --arg c "$2" '.items[]? | select(.change == $c) | .change' | head -n 1; }
eventually "audit-writer recording the creation" audit_has "${id}" created >/dev/null
info "audit trail of ${id}: created (task-events -> audit-writer, woken by KEDA)"

if [ "${SCENARIO}" = 1 ]; then
  log "Demo scenario"
  reminder_status() { api GET "/v1/tasks/$1/reminder" | jq -r --arg s "$2" 'select(.status == $s) | .status'; }
  eventually "the reminder to fire" reminder_status "${id}" fired >/dev/null
  info "reminder fired ($(api GET "/v1/tasks/${id}/reminder" | jq -r '.late_by_ms') ms late)"
  if [ -n "${SMOKE_EMAIL:-}" ]; then
    emailed() {
      api GET "/v1/tasks/$1/reminder" |
        jq -r '.deliveries[]? | select(.channel == "email" and .status == "delivered") | .status'
    }
    eventually "the notifier to mail the reminder (reminders -> notifier -> email binding)" emailed "${id}" >/dev/null
    info "reminder mailed to ${SMOKE_EMAIL} (notifier, woken by KEDA)"
  fi

  api POST "/v1/tasks/${id}/complete" | jq -e '.status == "completed"' >/dev/null
  info "completed ${id}"

  next_occurrence() {
    api GET "/v1/tasks?tag=smoke&status=open&q=$(jq -rn --arg q "${label}" '$q|@uri')" |
      jq -r --arg id "${id}" '.items[]? | select(.id != $id and .series.index == 1) | .id' | head -n 1
  }
  next="$(eventually "the next occurrence (on-task-completed -> create-task)" next_occurrence)"
  info "next occurrence ${next} appeared"
  eventually "the next occurrence's reminder to be scheduled" reminder_status "${next}" scheduled >/dev/null
  info "its reminder is scheduled"
  eventually "the audit trail to show the completion" audit_has "${id}" completed >/dev/null
  info "audit trail of ${id}: $(api GET "/v1/tasks/${id}/audit" | jq -r '[.items[].change] | join(", ")')"
fi

if [ "${SCALE_TO_ZERO}" = 1 ]; then
  log "Scale to zero"
  # The production cooldown is five minutes; shorten it for the check.
  kube patch scaledobject audit-writer -n "${NAMESPACE}" --type merge \
    -p '{"spec":{"cooldownPeriod":30}}' >/dev/null
  scaled_to_zero() {
    [ "$(kube get deployment audit-writer -n "${NAMESPACE}" -o jsonpath='{.spec.replicas}')" = 0 ] && echo yes
  }
  eventually "audit-writer to scale back to zero" scaled_to_zero >/dev/null
  info "audit-writer scaled back to zero after idling"
  kube patch scaledobject audit-writer -n "${NAMESPACE}" --type merge \
    -p '{"spec":{"cooldownPeriod":300}}' >/dev/null
fi

log "Smoke test passed"
