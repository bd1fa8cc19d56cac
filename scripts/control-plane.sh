#!/usr/bin/env bash
# A real Kubernetes control plane on loopback, without a kubelet: etcd and kube-apiserver as
# built by scripts/keda-platform.sh, in a temporary folder, with the flags envtest uses.
#
# Sourced (scripts/test-keda.sh): `control_plane_start <dir>` starts both, waits for /readyz and
# writes <dir>/kubeconfig (exported as KUBECONFIG); `control_plane_crds` applies every CRD of
# keda-platform.env; `keda_operator_start <dir>` runs the KEDA operator out of cluster against
# it, `keda_metrics_apiserver_start <dir>` KEDA's metrics API server behind the aggregation
# layer and `controller_manager_start <dir>` kube-controller-manager's HPA controller;
# `control_plane_stop` stops them all by PID (the caller traps EXIT). Run directly, it starts
# one and waits until Ctrl-C (or SIGTERM):
#
#   scripts/control-plane.sh        # then: KUBECONFIG=<printed path> kubectl get ns
#   scripts/control-plane.sh --keda --env-file <file>
#       # also the CRDs, the KEDA operator, its metrics API server and the HPA controller;
#       # once all is ready, writes KUBECONFIG=..., KUBECTL=..., KEDA_LOG=... and LOG_DIR=...
#       # to <file> (in one rename), which a test waits for (system-tests/tests/keda.rs)
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

# make_ca <path> <CN>: a self-signed CA valid one day, <path>.crt and <path>.key.
make_ca() {
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=$2" -keyout "$1.key" -out "$1.crt" 2>/dev/null
}

# make_cert <ca path> <path> <CN> <extension>: a key and a certificate signed by the CA, valid
# one day, with one X.509 v3 extension line (subjectAltName=..., extendedKeyUsage=...).
make_cert() {
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$3" -keyout "$2.key" -out "$2.csr" 2>/dev/null
  printf '%s\n' "$4" >"$2.ext"
  openssl x509 -req -in "$2.csr" -CA "$1.crt" -CAkey "$1.key" -CAcreateserial -days 1 \
    -extfile "$2.ext" -out "$2.crt" 2>/dev/null
  rm -f "$2.csr" "$2.ext"
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
  # The aggregation layer's front proxy, as kubeadm sets it up: the API server authenticates
  # to an aggregated API server (KEDA's metrics API server) with this client certificate and
  # passes the caller's name in X-Remote-* headers, which that server trusts because the
  # certificate is signed by the CA the API server publishes (kube-system/
  # extension-apiserver-authentication).
  make_ca "${dir}/front-proxy-ca" front-proxy-ca
  make_cert "${dir}/front-proxy-ca" "${dir}/front-proxy-client" front-proxy-client extendedKeyUsage=clientAuth
  # A client CA signs no one here (users authenticate by token), but the API server publishes it
  # beside the front proxy's, and aggregated servers expect both.
  make_ca "${dir}/client-ca" client-ca

  "${KUBE_APISERVER}" --etcd-servers "http://127.0.0.1:${etcd_port}" \
    --cert-dir "${dir}/certs" --bind-address 127.0.0.1 --advertise-address 127.0.0.1 \
    --secure-port "${api_port}" --service-cluster-ip-range 10.0.0.0/24 \
    --disable-admission-plugins ServiceAccount --allow-privileged=true \
    --service-account-issuer "https://127.0.0.1:${api_port}" \
    --service-account-key-file "${dir}/sa.pub" --service-account-signing-key-file "${dir}/sa.key" \
    --authorization-mode RBAC --token-auth-file "${dir}/tokens.csv" \
    --client-ca-file "${dir}/client-ca.crt" --requestheader-client-ca-file "${dir}/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "${dir}/front-proxy-client.crt" --proxy-client-key-file "${dir}/front-proxy-client.key" \
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

# http_ok <port> <path>: GET http://127.0.0.1:<port><path> answers 200.
http_ok() {
  [ "$(http_status "$1" "$2" 2>/dev/null)" = 200 ]
}

# await_ready <log> <message> <probe...>: waits until the probe command succeeds for the
# process started last; if that process exits first, or 60 s pass, prints the end of its log
# and dies with the message.
await_ready() {
  local log="$1" message="$2" waited=0
  shift 2
  until "$@" >/dev/null 2>&1; do
    sleep 0.2
    waited=$((waited + 1))
    if [ "${waited}" -ge 300 ] || ! kill -0 "${CONTROL_PLANE_PIDS[-1]}" 2>/dev/null; then
      tail -n 30 "${log}" >&2
      die "${message}"
    fi
  done
}

# keda_operator_start <dir>: the KEDA operator, out of cluster as KEDA's `make run` runs it,
# against the API server of KUBECONFIG (its CRDs applied), with a self-made certificate folder
# for its metrics service in <dir>/keda-certs and its log in <dir>/keda.log; returns once its
# /readyz answers 200.
keda_operator_start() {
  local dir="$1" certs="$1/keda-certs" probe_port="" metrics_port="" service_port="" t0
  : "${KEDA_OPERATOR:?run scripts/keda-platform.sh and source its keda-platform.env}"
  mkdir -p "${certs}"
  # One certificate for KEDA's two servers, as its cert rotation makes it in a cluster: the
  # operator's gRPC metrics service (dialled at 127.0.0.1) and the metrics API server (dialled
  # by the aggregation layer by its Service's name); both also present it as gRPC client and
  # server to each other (mutual TLS, the same CA).
  make_ca "${certs}/ca" keda-test-ca
  make_cert "${certs}/ca" "${certs}/tls" keda-operator \
    "subjectAltName=DNS:localhost,DNS:keda-operator-metrics-apiserver.keda.svc,IP:127.0.0.1"
  "${KUBECTL}" create namespace keda -o name >/dev/null
  free_port probe_port
  free_port metrics_port
  free_port service_port
  KEDA_SERVICE_PORT="${service_port}"
  t0=$(date +%s%N)
  env WATCH_NAMESPACE="" KEDA_CLUSTER_OBJECT_NAMESPACE=keda POD_NAMESPACE=keda \
    "${KEDA_OPERATOR}" --metrics-bind-address "127.0.0.1:${metrics_port}" \
    --health-probe-bind-address "127.0.0.1:${probe_port}" \
    --metrics-service-bind-address "127.0.0.1:${service_port}" --cert-dir "${certs}" \
    >"${dir}/keda.log" 2>&1 &
  CONTROL_PLANE_PIDS+=("$!")
  await_ready "${dir}/keda.log" "the KEDA operator did not become ready" http_ok "${probe_port}" /readyz
  info "KEDA operator ready in $((($(date +%s%N) - t0) / 1000000)) ms"
}

# keda_metrics_apiserver_start <dir>: KEDA's metrics API server ("keda-operator-metrics-apiserver"
# in a cluster), out of cluster, registered as external.metrics.k8s.io through the aggregation
# layer: a Service of type ExternalName `localhost` (the aggregator resolves it to
# https://localhost:<APIService port>, k8s.io/apiserver/pkg/util/proxy.ResolveCluster) and an
# APIService trusting the certificate of keda_operator_start, whose gRPC metrics service it
# asks for each value. Returns once the API server serves the group (the APIService is
# Available). Its log: <dir>/keda-adapter.log.
keda_metrics_apiserver_start() {
  local dir="$1" certs="$1/keda-certs" secure_port="" metrics_port="" t0
  : "${KEDA_ADAPTER:?run scripts/keda-platform.sh and source its keda-platform.env}"
  : "${KEDA_SERVICE_PORT:?start the KEDA operator first (keda_operator_start)}"
  free_port secure_port
  free_port metrics_port
  t0=$(date +%s%N)
  env WATCH_NAMESPACE="" KEDA_CLUSTER_OBJECT_NAMESPACE=keda POD_NAMESPACE=keda \
    "${KEDA_ADAPTER}" --secure-port "${secure_port}" --bind-address 127.0.0.1 \
    --cert-dir "${certs}" --tls-cert-file "${certs}/tls.crt" --tls-private-key-file "${certs}/tls.key" \
    --lister-kubeconfig "${KUBECONFIG}" --authentication-kubeconfig "${KUBECONFIG}" \
    --authorization-kubeconfig "${KUBECONFIG}" \
    --metrics-service-address "127.0.0.1:${KEDA_SERVICE_PORT}" --port "${metrics_port}" \
    >"${dir}/keda-adapter.log" 2>&1 &
  CONTROL_PLANE_PIDS+=("$!")
  "${KUBECTL}" apply --server-side --field-manager=control-plane -o name -f - >/dev/null <<YAML
apiVersion: v1
kind: Service
metadata: {name: keda-operator-metrics-apiserver, namespace: keda}
spec: {type: ExternalName, externalName: localhost}
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.external.metrics.k8s.io}
spec:
  group: external.metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  service: {name: keda-operator-metrics-apiserver, namespace: keda, port: ${secure_port}}
  caBundle: $(base64 -w0 "${certs}/ca.crt")
YAML
  await_ready "${dir}/keda-adapter.log" \
    "KEDA's metrics API server did not become available through the API server (kubectl get apiservice)" \
    "${KUBECTL}" get --raw /apis/external.metrics.k8s.io/v1beta1
  info "KEDA metrics API server available in $((($(date +%s%N) - t0) / 1000000)) ms"
}

# controller_manager_start <dir>: kube-controller-manager with its HPA controller only, which
# reconciles the HPAs KEDA creates from the external metrics above (1 <-> N; KEDA itself does
# 0 <-> 1). Every second (a cluster's default is 15 s), so that a test sees N replicas
# within seconds; the HPA's own rules (tolerance, behavior, stabilization) are unchanged. The
# controllers that would run pods (Deployment, ReplicaSet) stay off: the test's kubelet
# stand-in runs `spec.replicas` processes itself. Returns once its /healthz answers 200; its
# log: <dir>/kube-controller-manager.log.
controller_manager_start() {
  local dir="$1" kcm_port="" t0
  : "${KUBE_CONTROLLER_MANAGER:?run scripts/keda-platform.sh and source its keda-platform.env}"
  command -v curl >/dev/null 2>&1 || apt_install curl
  free_port kcm_port
  t0=$(date +%s%N)
  "${KUBE_CONTROLLER_MANAGER}" --kubeconfig "${KUBECONFIG}" \
    --authentication-kubeconfig "${KUBECONFIG}" --authorization-kubeconfig "${KUBECONFIG}" \
    --controllers horizontalpodautoscaling --leader-elect=false --use-service-account-credentials=false \
    --bind-address 127.0.0.1 --secure-port "${kcm_port}" --cert-dir "${dir}/kcm-certs" \
    --horizontal-pod-autoscaler-sync-period 1s \
    >"${dir}/kube-controller-manager.log" 2>&1 &
  CONTROL_PLANE_PIDS+=("$!")
  await_ready "${dir}/kube-controller-manager.log" "kube-controller-manager did not become healthy" \
    curl -skf -o /dev/null "https://127.0.0.1:${kcm_port}/healthz"
  info "kube-controller-manager (HPA controller) healthy in $((($(date +%s%N) - t0) / 1000000)) ms"
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
    keda_metrics_apiserver_start "${state}"
    controller_manager_start "${state}"
  fi
  if [ -n "${env_file}" ]; then
    printf 'KUBECONFIG=%s\nKUBECTL=%s\nKEDA_LOG=%s\nLOG_DIR=%s\n' "${KUBECONFIG}" "${KUBECTL}" "${state}/keda.log" "${state}" >"${env_file}.tmp"
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
