#!/usr/bin/env bash
# Follows the logs of the functions (JSON lines, one per event, with the CloudEvent id and the
# trace id).
#
#   make logs                            # every function's app container
#   make logs FUNCTION=fire-reminder     # one function
#   make logs FUNCTION=task-api SIDECAR=1  # its Dapr sidecar instead
#   make logs SINCE=1h                   # further back (default 10m)
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
require_tools "kubectl|Install kubectl: https://kubernetes.io/docs/tasks/tools/"

selector=app.kubernetes.io/part-of=todo-functions,app.kubernetes.io/component!=setup
container=
if [ -n "${FUNCTION:-}" ]; then
  case " ${FUNCTIONS[*]} " in
    *" ${FUNCTION} "*) ;;
    *) die "unknown FUNCTION '${FUNCTION}' (one of: ${FUNCTIONS[*]})" ;;
  esac
  selector="app.kubernetes.io/name=${FUNCTION}"
  container="${FUNCTION}"
fi
if [ "${SIDECAR:-0}" = 1 ]; then
  [ -n "${FUNCTION:-}" ] || die "SIDECAR=1 needs FUNCTION=<function>"
  container=daprd
fi
args=(logs -n "${NAMESPACE}" -l "${selector}" --follow --prefix --since "${SINCE:-10m}"
  --max-log-requests 20 --ignore-errors)
if [ -n "${container}" ]; then
  args+=(-c "${container}")
fi
# Without -c, each pod's default container: the app (kubectl.kubernetes.io/default-container).
info "kubectl ${args[*]}  (functions scaled to zero have no pods, hence no logs)"
exec kubectl ${KUBE_CONTEXT:+--context "${KUBE_CONTEXT}"} "${args[@]}"
