#!/usr/bin/env bash
# Removes todo-functions from the cluster of KUBE_CONTEXT (default: the current context): the
# functions, their Dapr components, KEDA objects and Secrets (the whole `todo` namespace).
#
#   make undeploy                       # the application only
#   make undeploy PLATFORM=1            # also the minikube/kind platform: Kafka, PostgreSQL,
#                                       # their operators, KEDA and Dapr (never in the cloud:
#                                       # those may serve other applications)
#
# The Kafka topics and the database tables stay (they live outside the namespace); on minikube
# `minikube delete` wipes everything.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
require_tools "kubectl|Install kubectl: https://kubernetes.io/docs/tasks/tools/"

context="${KUBE_CONTEXT:-$(kubectl config current-context)}"
export KUBE_CONTEXT="${context}"
log "Removing todo-functions from ${context}"
kube delete -k "${ROOT}/manifests/monitoring" --ignore-not-found >/dev/null 2>&1 || true
# ScaledObjects first, so that KEDA does not scale up what is being deleted.
kube delete scaledobjects --all -n "${NAMESPACE}" --ignore-not-found
kube delete namespace "${NAMESPACE}" --ignore-not-found --wait=true

if [ "${PLATFORM:-0}" = 1 ]; then
  require_tools "helm|Install Helm: https://helm.sh/docs/intro/install/"
  log "Removing the local platform (Kafka, PostgreSQL, KEDA, Dapr, monitoring, the mail sink)"
  kube delete -f "${ROOT}/manifests/platform/minikube/kafka.yaml" --ignore-not-found --wait=true || true
  kube delete cluster.postgresql.cnpg.io todo-pg -n postgres --ignore-not-found --wait=true || true
  for release in strimzi:kafka cnpg:cnpg-system keda:keda dapr:dapr-system kube-prometheus-stack:monitoring; do
    if helmk status "${release%%:*}" -n "${release#*:}" >/dev/null 2>&1; then
      helmk uninstall "${release%%:*}" -n "${release#*:}" --wait
    fi
  done
  kube delete namespace kafka postgres cnpg-system keda dapr-system monitoring mail --ignore-not-found || true
fi
log "Done"
