#!/usr/bin/env bash
# A real Kubernetes control plane on loopback, without a kubelet: etcd and kube-apiserver as
# built by scripts/keda-platform.sh, in a temporary folder, with the flags envtest uses.
#
# Sourced (scripts/test-keda.sh): `control_plane_start <dir>` starts both, waits for /readyz and
# writes <dir>/kubeconfig (exported as KUBECONFIG); `control_plane_crds` applies every CRD of
# keda-platform.env; `keda_operator_start <dir>` runs the KEDA operator out of cluster against
# it; `control_plane_stop` stops them all by PID (the caller traps EXIT). Run directly, it starts
# one and waits until Ctrl-C (or SIGTERM):
#
#   scripts/control-plane.sh        # then: KUBECONFIG=<printed path> kubectl get ns
#   scripts/control-plane.sh --keda --env-file <file>
#       # also the CRDs and the KEDA operator; once all is ready, writes KUBECONFIG=... and
#       # KUBECTL=... to <file> (in one rename), which a test waits for (system-tests/tests/keda.rs)
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
    # Below 32768, where Linux's ephemeral ports start (ip_local_port_range): an outgoing
    # connection's local port there could take the port between this check and etcd's bind (a
    # CI run lost etcd's client port that way: "bind: address already in use").
    port=$((20000 + RANDOM % 12000))
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

# control_plane_crds: applies the CRDs of CRD_DIRS (KEDA, Dapr, Prometheus Operator,
# CloudNativePG, Strimzi) for real and waits until they are established.
control_plane_crds() {
  local dir tries=0 err
  # shellcheck disable=SC2086 # CRD_DIRS is a list of folders
  for dir in ${CRD_DIRS:?}; do
    "${KUBECTL}" apply --server-side --field-manager=control-plane -f "${dir}" -o name | sed 's/^/    /' >&2
  done
  # A CRD applied a moment ago may have no status yet, which `kubectl wait` takes for an error
  # (".status.conditions accessor error"), not for "not yet" (seen with the CRDs applied last):
  # try again, for up to 30 s.
  until err="$("${KUBECTL}" wait --for condition=Established --timeout=60s crd --all 2>&1 >/dev/null)"; do
    tries=$((tries + 1))
    [ "${tries}" -lt 30 ] || die "the CRDs are not established: ${err}"
    sleep 1
  done
}

# http_status <port> <path>: the HTTP status code of GET http://127.0.0.1:<port><path> (bash only).
http_status() {
  local status
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
  read -r _ status _ <&3 || true
  exec 3<&-
  echo "${status:-none}"
}

# keda_operator_start <dir>: the KEDA operator, out of cluster as KEDA's `make run` runs it,
# against the API server of KUBECONFIG (its CRDs applied), with a self-made certificate folder
# for its metrics service in <dir>/keda-certs and its log in <dir>/keda.log; returns once its
# /readyz answers 200.
keda_operator_start() {
  local dir="$1" certs="$1/keda-certs" probe_port="" metrics_port="" service_port="" t0 waited=0
  : "${KEDA_OPERATOR:?run scripts/keda-platform.sh and source its keda-platform.env}"
  mkdir -p "${certs}"
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=keda-test-ca \
    -keyout "${certs}/ca.key" -out "${certs}/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=keda-operator -keyout "${certs}/tls.key" \
    -out "${certs}/tls.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"${certs}/san.ext"
  openssl x509 -req -in "${certs}/tls.csr" -CA "${certs}/ca.crt" -CAkey "${certs}/ca.key" \
    -CAcreateserial -days 1 -extfile "${certs}/san.ext" -out "${certs}/tls.crt" 2>/dev/null
  "${KUBECTL}" create namespace keda -o name >/dev/null
  free_port probe_port
  free_port metrics_port
  free_port service_port
  t0=$(date +%s%N)
  env WATCH_NAMESPACE="" KEDA_CLUSTER_OBJECT_NAMESPACE=keda POD_NAMESPACE=keda \
    "${KEDA_OPERATOR}" --metrics-bind-address "127.0.0.1:${metrics_port}" \
    --health-probe-bind-address "127.0.0.1:${probe_port}" \
    --metrics-service-bind-address "127.0.0.1:${service_port}" --cert-dir "${certs}" \
    >"${dir}/keda.log" 2>&1 &
  CONTROL_PLANE_PIDS+=("$!")
  until [ "$(http_status "${probe_port}" /readyz 2>/dev/null)" = 200 ]; do
    sleep 0.2
    waited=$((waited + 1))
    if [ "${waited}" -ge 300 ] || ! kill -0 "${CONTROL_PLANE_PIDS[-1]}" 2>/dev/null; then
      tail -n 30 "${dir}/keda.log" >&2
      die "the KEDA operator did not become ready"
    fi
  done
  info "KEDA operator ready in $((($(date +%s%N) - t0) / 1000000)) ms"
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
  with_keda=0 env_file=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --keda) with_keda=1 ;;
      --env-file)
        env_file="${2:?--env-file needs a path}"
        shift
        ;;
      *) die "unknown argument $1 (use: [--keda] [--env-file <file>])" ;;
    esac
    shift
  done
  "${ROOT}/scripts/keda-platform.sh"
  # shellcheck source=/dev/null
  . "${PLATFORM_CACHE}/keda-platform.env"
  KUBECTL="${KUBECTL:-$("${ROOT}/scripts/lint-tools.sh")/kubectl}"
  state="$(mktemp -d "${TMPDIR:-/tmp}/control-plane.XXXXXX")"
  sleeper=""
  trap 'kill ${sleeper} 2>/dev/null || true; control_plane_stop; rm -rf "${state}"' EXIT
  trap 'exit 130' INT TERM
  control_plane_start "${state}"
  if [ "${with_keda}" = 1 ]; then
    control_plane_crds
    keda_operator_start "${state}"
  fi
  if [ -n "${env_file}" ]; then
    printf 'KUBECONFIG=%s\nKUBECTL=%s\nKEDA_LOG=%s\n' "${KUBECONFIG}" "${KUBECTL}" "${state}/keda.log" >"${env_file}.tmp"
    mv "${env_file}.tmp" "${env_file}"
  fi
  log "KUBECONFIG=${KUBECONFIG} (Ctrl-C stops everything this started)"
  # Up until Ctrl-C or SIGTERM, or until the process that started it is gone: a test killed
  # before its clean-up ran leaves no etcd, kube-apiserver or KEDA behind.
  parent="${PPID}"
  while kill -0 "${parent}" 2>/dev/null; do
    sleep 1 &
    sleeper=$!
    wait "${sleeper}"
  done
fi
