#!/usr/bin/env bash
# A real Kubernetes control plane on loopback, without a kubelet: etcd and kube-apiserver as
# built by scripts/keda-platform.sh, in a temporary folder, with the flags envtest uses.
#
# Sourced (scripts/test-keda.sh): `control_plane_start <dir>` starts both, waits for /readyz and
# writes <dir>/kubeconfig (exported as KUBECONFIG); `control_plane_stop` stops them by PID (the
# caller traps EXIT). Run directly, it starts one and waits until Ctrl-C:
#
#   scripts/control-plane.sh        # then: KUBECONFIG=<printed path> kubectl get ns
#
# Needs KUBECTL (a kubectl binary) and the binaries of ${TODO_PLATFORM_CACHE}/keda-platform.env.
# The admin's bearer token is random, lives only in <dir> (mode 0700) and is never printed.

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONTROL_PLANE_PIDS=()

# free_port <variable>: sets it to a TCP port on 127.0.0.1 that nothing listens on now and that
# no earlier call handed out (run in this shell, not in $(...): a subshell's $RANDOM may repeat
# its parent's, and the ports handed out are remembered here).
CONTROL_PLANE_PORTS=" "
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 30000))
    case "${CONTROL_PLANE_PORTS}" in *" ${port} "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; then
      CONTROL_PLANE_PORTS+="${port} "
      printf -v "$1" '%s' "${port}"
      return
    fi
  done
}

# control_plane_start <dir>: etcd + kube-apiserver with their state under <dir>.
control_plane_start() {
  local dir="$1" t0 etcd_port peer_port metrics_port api_port token waited=0
  t0=$(date +%s%N)
  : "${ETCD:?run scripts/keda-platform.sh and source its keda-platform.env}" "${KUBE_APISERVER:?}" "${KUBECTL:?}"
  command -v openssl >/dev/null 2>&1 || apt_install openssl
  mkdir -p "${dir}" && chmod 0700 "${dir}"
  free_port etcd_port
  free_port peer_port
  free_port metrics_port
  free_port api_port

  "${ETCD}" --name control-plane --data-dir "${dir}/etcd" \
    --listen-client-urls "http://127.0.0.1:${etcd_port}" --advertise-client-urls "http://127.0.0.1:${etcd_port}" \
    --listen-peer-urls "http://127.0.0.1:${peer_port}" --initial-advertise-peer-urls "http://127.0.0.1:${peer_port}" \
    --initial-cluster "control-plane=http://127.0.0.1:${peer_port}" \
    --listen-metrics-urls "http://127.0.0.1:${metrics_port}" \
    --unsafe-no-fsync --log-level warn >"${dir}/etcd.log" 2>&1 &
  CONTROL_PLANE_PIDS+=("$!")

  # The service-account signing key pair, and one system:masters user with a random token.
  openssl genrsa -out "${dir}/sa.key" 2048 2>/dev/null
  openssl rsa -in "${dir}/sa.key" -pubout -out "${dir}/sa.pub" 2>/dev/null
  token="$(random_secret 32)"
  (umask 077 && printf '%s,admin,admin,system:masters\n' "${token}" >"${dir}/tokens.csv")

  "${KUBE_APISERVER}" --etcd-servers "http://127.0.0.1:${etcd_port}" \
    --cert-dir "${dir}/certs" --bind-address 127.0.0.1 --advertise-address 127.0.0.1 \
    --secure-port "${api_port}" --service-cluster-ip-range 10.0.0.0/24 \
    --disable-admission-plugins ServiceAccount --allow-privileged=true \
    --service-account-issuer "https://127.0.0.1:${api_port}" \
    --service-account-key-file "${dir}/sa.pub" --service-account-signing-key-file "${dir}/sa.key" \
    --authorization-mode RBAC --token-auth-file "${dir}/tokens.csv" \
    >"${dir}/kube-apiserver.log" 2>&1 &
  CONTROL_PLANE_PIDS+=("$!")

  # The API server writes its self-signed serving certificate into cert-dir as it starts.
  while [ ! -s "${dir}/certs/apiserver.crt" ]; do
    sleep 0.1
    waited=$((waited + 1))
    [ "${waited}" -lt 600 ] || { tail -n 20 "${dir}/kube-apiserver.log" >&2; die "kube-apiserver wrote no certificate in 60 s"; }
  done
  export KUBECONFIG="${dir}/kubeconfig"
  (
    umask 077
    cat >"${KUBECONFIG}" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
  - name: control-plane
    cluster:
      server: https://127.0.0.1:${api_port}
      certificate-authority: ${dir}/certs/apiserver.crt
users:
  - name: admin
    user:
      token: ${token}
contexts:
  - name: control-plane
    context: {cluster: control-plane, user: admin}
current-context: control-plane
KUBECONFIG
  )
  until "${KUBECTL}" get --raw /readyz >/dev/null 2>&1; do
    sleep 0.2
    waited=$((waited + 2))
    if [ "${waited}" -ge 1200 ] || ! kill -0 "${CONTROL_PLANE_PIDS[1]}" 2>/dev/null; then
      tail -n 30 "${dir}/etcd.log" "${dir}/kube-apiserver.log" >&2
      die "kube-apiserver not ready (logs above, in ${dir})"
    fi
  done
  info "control plane ready in $((($(date +%s%N) - t0) / 1000000)) ms: kube-apiserver https://127.0.0.1:${api_port}, etcd :${etcd_port}"
}

# control_plane_stop: stops what control_plane_start started, the API server first.
control_plane_stop() {
  local i pid
  for ((i = ${#CONTROL_PLANE_PIDS[@]} - 1; i >= 0; i--)); do
    pid="${CONTROL_PLANE_PIDS[i]}"
    kill "${pid}" 2>/dev/null || continue
    wait "${pid}" 2>/dev/null || true
  done
  CONTROL_PLANE_PIDS=()
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  "${ROOT}/scripts/keda-platform.sh"
  # shellcheck source=/dev/null
  . "${PLATFORM_CACHE}/keda-platform.env"
  KUBECTL="${KUBECTL:-$("${ROOT}/scripts/lint-tools.sh")/kubectl}"
  state="$(mktemp -d "${TMPDIR:-/tmp}/control-plane.XXXXXX")"
  sleeper=""
  trap 'kill ${sleeper} 2>/dev/null; control_plane_stop; rm -rf "${state}"' EXIT
  trap 'exit 130' INT TERM
  control_plane_start "${state}"
  log "KUBECONFIG=${KUBECONFIG} (Ctrl-C stops etcd and kube-apiserver)"
  while :; do
    sleep 3600 &
    sleeper=$!
    wait "${sleeper}"
  done
fi
