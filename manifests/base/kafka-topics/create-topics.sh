#!/bin/sh
# Creates the topics listed in topics.txt, or grows their partition count to the declared one.
# Idempotent: the deploy scripts run it (as the kafka-topics Job) on every deploy. Topic configs
# are applied at creation only; changing them on an existing topic is a deliberate operation
# (kafka-configs.sh), not something a deploy does behind your back.
set -eu

: "${KAFKA_BOOTSTRAP_SERVERS:?KAFKA_BOOTSTRAP_SERVERS is not set}"
: "${KAFKA_REPLICATION_FACTOR:?KAFKA_REPLICATION_FACTOR is not set}"
protocol="${KAFKA_SECURITY_PROTOCOL:-PLAINTEXT}"
dir="$(dirname "$0")"
props=/tmp/client.properties

# Client settings. Credentials come from the environment (Secret `kafka`); quotes and
# backslashes are escaped for the JAAS line.
escape() { printf '%s' "$1" | sed 's/[\\"]/\\&/g'; }
{
  echo "security.protocol=${protocol}"
  case "${protocol}" in
    SASL_*)
      mechanism="${KAFKA_SASL_MECHANISM:?KAFKA_SASL_MECHANISM is not set}"
      case "${mechanism}" in
        PLAIN) module=org.apache.kafka.common.security.plain.PlainLoginModule ;;
        *) module=org.apache.kafka.common.security.scram.ScramLoginModule ;;
      esac
      echo "sasl.mechanism=${mechanism}"
      echo "sasl.jaas.config=${module} required username=\"$(escape "${KAFKA_USERNAME:?}")\" password=\"$(escape "${KAFKA_PASSWORD:?}")\";"
      ;;
  esac
} > "${props}"

topics() {
  /opt/kafka/bin/kafka-topics.sh --bootstrap-server "${KAFKA_BOOTSTRAP_SERVERS}" \
    --command-config "${props}" "$@"
}

grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "${dir}/topics.txt" |
  while read -r topic partitions configs; do
    set --
    for kv in $(printf '%s,%s' "${configs:-}" "${KAFKA_TOPIC_CONFIG:-}" | tr ',' ' '); do
      set -- "$@" --config "${kv}"
    done
    topics --create --if-not-exists --topic "${topic}" --partitions "${partitions}" \
      --replication-factor "${KAFKA_REPLICATION_FACTOR}" "$@"
    current="$(topics --describe --topic "${topic}" |
      sed -n 's/.*PartitionCount:[[:space:]]*\([0-9][0-9]*\).*/\1/p' | head -n 1)"
    if [ -z "${current}" ]; then
      echo "error: cannot read the partition count of ${topic}" >&2
      exit 1
    elif [ "${current}" -lt "${partitions}" ]; then
      topics --alter --topic "${topic}" --partitions "${partitions}"
      echo "topic ${topic}: grown from ${current} to ${partitions} partitions"
    elif [ "${current}" -gt "${partitions}" ]; then
      echo "warning: ${topic} has ${current} partitions, more than the ${partitions} declared (Kafka cannot shrink a topic)" >&2
    else
      echo "topic ${topic}: ${partitions} partitions"
    fi
  done
