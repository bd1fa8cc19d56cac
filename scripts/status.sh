#!/usr/bin/env bash
# What todo-functions is doing right now: replicas per function, what each KEDA trigger sees
# (consumer lag, reminders due, delivery retries due), the consumer groups' lag per topic and the dead-letter topics'
# depth (read with the Kafka CLI from a short-lived pod, with the deployment's own settings).
#
#   make status [KUBE_CONTEXT=...]
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
require_tools "kubectl|Install kubectl: https://kubernetes.io/docs/tasks/tools/" "jq|Install jq: https://jqlang.org/download/"

log "Functions"
kube get deployments,scaledobjects,hpa -n "${NAMESPACE}" -l app.kubernetes.io/part-of=todo-functions

log "KEDA triggers (the value each trigger reports: lag, reminders or delivery retries due soon)"
for so in $(kube get scaledobjects -n "${NAMESPACE}" -o jsonpath='{.items[*].metadata.name}'); do
  for metric in $(kube get scaledobject "${so}" -n "${NAMESPACE}" -o jsonpath='{.status.externalMetricNames[*]}'); do
    value="$(kube get --raw "/apis/external.metrics.k8s.io/v1beta1/namespaces/${NAMESPACE}/${metric}?labelSelector=scaledobject.keda.sh%2Fname%3D${so}" 2>/dev/null |
      jq -r '.items[0].value // "?"' || echo "?")"
    printf '    %-20s %-45s %s\n' "${so}" "${metric}" "${value}"
  done
done

log "Kafka: consumer lag and dead-letter topics"
# Runs the Kafka CLI in the namespace (restricted Pod Security, the same settings and
# credentials as the kafka-topics Job), then removes the pod.
read -r -d '' script <<'SH' || true
set -eu
props=/tmp/client.properties
echo "security.protocol=${KAFKA_SECURITY_PROTOCOL}" > "$props"
case "${KAFKA_SECURITY_PROTOCOL}" in SASL_*)
  module=org.apache.kafka.common.security.scram.ScramLoginModule
  [ "${KAFKA_SASL_MECHANISM}" = PLAIN ] && module=org.apache.kafka.common.security.plain.PlainLoginModule
  echo "sasl.mechanism=${KAFKA_SASL_MECHANISM}" >> "$props"
  echo "sasl.jaas.config=${module} required username=\"${KAFKA_USERNAME}\" password=\"${KAFKA_PASSWORD}\";" >> "$props"
esac
bin=/opt/kafka/bin
for group in task-api create-task on-task-completed fire-reminder audit-writer notifier; do
  $bin/kafka-consumer-groups.sh --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" --command-config "$props" \
    --describe --group "$group" 2>/dev/null | awk -v g="$group" '$1 == g && $6 ~ /^[0-9]+$/ {lag[$2]+=$6} END {for (t in lag) printf "    %-20s %-40s lag %s\n", g, t, lag[t]}'
done
echo "    dead-letter topics (messages held = end offset - start offset):"
for topic in create-task-dlq on-task-completed-dlq fire-reminder-dlq audit-writer-dlq notifier-dlq; do
  end=$($bin/kafka-get-offsets.sh --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" --command-config "$props" --topic "$topic" --time -1 | awk -F: '{s+=$3} END {print s+0}')
  start=$($bin/kafka-get-offsets.sh --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" --command-config "$props" --topic "$topic" --time -2 | awk -F: '{s+=$3} END {print s+0}')
  printf "    %-40s %s\n" "$topic" "$((end - start))"
done
SH
overrides="$(jq -n --arg script "${script}" '{
  apiVersion: "v1",
  spec: {
    restartPolicy: "Never",
    automountServiceAccountToken: false,
    securityContext: {runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, seccompProfile: {type: "RuntimeDefault"}},
    containers: [{
      name: "kafka-status",
      image: "apache/kafka:4.1.2",
      command: ["/bin/sh", "-c", $script],
      env: ([
        ["KAFKA_BOOTSTRAP_SERVERS", "kafka-brokers"], ["KAFKA_SECURITY_PROTOCOL", "kafka-security-protocol"],
        ["KAFKA_SASL_MECHANISM", "kafka-sasl-mechanism"]
      ] | map({name: .[0], valueFrom: {configMapKeyRef: {name: "platform-settings", key: .[1]}}}))
      + ([["KAFKA_USERNAME", "username"], ["KAFKA_PASSWORD", "password"]]
         | map({name: .[0], valueFrom: {secretKeyRef: {name: "kafka", key: .[1], optional: true}}}))
      + [{name: "KAFKA_HEAP_OPTS", value: "-Xmx128m"}, {name: "LOG_DIR", value: "/tmp/logs"}],
      resources: {requests: {cpu: "100m", memory: "192Mi"}, limits: {memory: "384Mi"}},
      securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: {drop: ["ALL"]}},
      volumeMounts: [{name: "tmp", mountPath: "/tmp"}]
    }],
    volumes: [{name: "tmp", emptyDir: {}}]
  }}')"
kube run "kafka-status-$(random_secret 3)" -n "${NAMESPACE}" --rm -i --quiet --restart=Never \
  --image=apache/kafka:4.1.2 --labels=app.kubernetes.io/component=setup \
  --overrides="${overrides}" ||
  warn "could not read Kafka (is the namespace deployed and Kafka reachable?)"
