#!/usr/bin/env bash
# Dapr as the MCP client of an MCP server (issue 22, point 9; docs/mcp-dapr.md), with the real
# daprd of `make platform` and the resource dapr-components/local-agent/mcpserver.yaml (its URL
# replaced by MCP_URL). Its workflow engine gets placement and the Dapr Scheduler (both from
# `make platform`, the same dapr module as daprd) and an in-memory actor state store.
#
# For each token, one daprd (app-id todo-agent) with TODO_MCP_AUTHORIZATION="Bearer <token>" runs
# the workflows dapr.internal.mcp.todo-tasks.ListTools and ...CallTool.list_tasks (input
# {"arguments": {}}) and prints one JSON line: {"token": <n>, "tools": [names],
# "list_tasks": <the tool's result>}. With task-api on devhost (`make run`) and two users' tokens,
# each line must hold only its user's tasks.
#
# usage: MCP_URL=http://localhost:8080/mcp scripts/dapr-mcp-probe.sh <jwt>...
# Logs stay in a temporary directory, printed at the end. Wrap in flock /tmp/todo-platform.lock.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
load_versions

[ "$#" -ge 1 ] || die "usage: MCP_URL=http://host:port/mcp $0 <jwt>..."
: "${MCP_URL:?set MCP_URL, e.g. http://localhost:8080/mcp}"
[ -s "${PLATFORM_CACHE}/platform.env" ] || die "run make platform first (daprd, the Scheduler, placement)"
# shellcheck source=/dev/null
. "${PLATFORM_CACHE}/platform.env"
require_tools "curl|apt-get install curl" "jq|apt-get install jq" "python3|apt-get install python3"

placement="${DAPR_PLACEMENT:-}"
[ -x "${placement}" ] || die "platform.env names no placement binary: run make platform (it builds placement too)"

port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
work="$(mktemp -d "${TMPDIR:-/tmp}/dapr-mcp-probe.XXXXXX")"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "${pid}" 2>/dev/null || true; done
  info "logs: ${work}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "${work}/resources" "${work}/scheduler-etcd"
chmod 700 "${work}/scheduler-etcd"
sed "s|^      url: .*|      url: ${MCP_URL}|" "${ROOT}/dapr-components/local-agent/mcpserver.yaml" >"${work}/resources/todo-tasks.yaml"
cat >"${work}/resources/actorstate.yaml" <<'EOF'
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: actorstate
spec:
  type: state.in-memory
  version: v1
  metadata:
    - name: actorStateStore
      value: "true"
EOF

placement_port="$(port)"
"${placement}" --listen-address 127.0.0.1 --port "${placement_port}" --healthz-port "$(port)" \
  --metrics-port "$(port)" --initial-cluster "dapr-placement-0=127.0.0.1:$(port)" --log-level warn \
  >"${work}/placement.log" 2>&1 &
pids+=("$!")
scheduler_port="$(port)"
scheduler_healthz="$(port)"
"${DAPR_SCHEDULER}" --listen-address 127.0.0.1 --port "${scheduler_port}" --etcd-data-dir "${work}/scheduler-etcd" \
  --etcd-client-listen-address 127.0.0.1 --etcd-client-port "$(port)" \
  --etcd-initial-cluster "dapr-scheduler-server-0=http://127.0.0.1:$(port)" \
  --healthz-listen-address 127.0.0.1 --healthz-port "${scheduler_healthz}" \
  --metrics-listen-address 127.0.0.1 --metrics-port "$(port)" \
  --override-broadcast-host-port "127.0.0.1:${scheduler_port}" --log-level warn >"${work}/scheduler.log" 2>&1 &
pids+=("$!")
for _ in $(seq 300); do curl -sf "http://127.0.0.1:${scheduler_healthz}/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:${scheduler_healthz}/healthz" >/dev/null || die "the Scheduler is not healthy (${work}/scheduler.log)"

wf=dapr.internal.mcp.todo-tasks
# run_workflow <daprd http port> <name> <instance id> <input>: its output, once completed.
run_workflow() {
  curl -sf -X POST -H 'Content-Type: application/json' \
    "http://127.0.0.1:$1/v1.0/workflows/dapr/$2/start?instanceID=$3" -d "$4" >/dev/null ||
    die "starting $2 failed"
  local state
  for _ in $(seq 100); do
    state="$(curl -sf "http://127.0.0.1:$1/v1.0/workflows/dapr/$3")"
    case "$(jq -r .runtimeStatus <<<"${state}")" in
      COMPLETED) jq -c '.properties["dapr.workflow.output"] | fromjson' <<<"${state}"; return ;;
      FAILED | TERMINATED) die "$2: ${state}" ;;
    esac
    sleep 0.1
  done
  die "$2 did not complete: ${state}"
}

n=0
for token in "$@"; do
  n=$((n + 1))
  http="$(port)"
  TODO_MCP_AUTHORIZATION="Bearer ${token}" "${DAPRD}" --app-id todo-agent --resources-path "${work}/resources" \
    --placement-host-address "127.0.0.1:${placement_port}" --scheduler-host-address "127.0.0.1:${scheduler_port}" \
    --dapr-http-port "${http}" --dapr-grpc-port "$(port)" --dapr-internal-grpc-port "$(port)" \
    --metrics-port "$(port)" --log-level info >"${work}/daprd-${n}.log" 2>&1 &
  daprd_pid="$!"
  pids+=("${daprd_pid}")
  for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:${http}/v1.0/healthz" >/dev/null && break
    kill -0 "${daprd_pid}" 2>/dev/null || die "daprd ${n} exited: $(grep -m1 'level=fatal' "${work}/daprd-${n}.log")"
    sleep 0.1
  done
  tools="$(run_workflow "${http}" "${wf}.ListTools" "probe-${n}-tools" '{}' | jq -c '[.tools[].name]')"
  tasks="$(run_workflow "${http}" "${wf}.CallTool.list_tasks" "probe-${n}-list" '{"arguments": {}}')"
  jq -nc --argjson n "${n}" --argjson tools "${tools}" --argjson tasks "${tasks}" \
    '{token: $n, tools: $tools, list_tasks: $tasks}'
  kill "${daprd_pid}" 2>/dev/null || true
  wait "${daprd_pid}" 2>/dev/null || true
done
