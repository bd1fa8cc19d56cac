#!/bin/sh
# Creates the topics listed in topics.txt, or grows their partition count to the declared one,
# then gives each consumer group of consumers.txt a committed offset (the earliest retained) on
# every partition where it has none (why: consumers.txt). Idempotent: the deploy scripts run it
# (as the kafka-topics Job) on every deploy. Topic configs are applied at creation only;
# changing them on an existing topic is a deliberate operation (kafka-configs.sh), not something
# a deploy does behind your back. KAFKA_BIN (default /opt/kafka/bin, the image's) is where the
# Kafka command-line tools are.
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

bin="${KAFKA_BIN:-/opt/kafka/bin}"
topics() {
  "${bin}/kafka-topics.sh" --bootstrap-server "${KAFKA_BOOTSTRAP_SERVERS}" \
    --command-config "${props}" "$@"
}
groups() {
  "${bin}/kafka-consumer-groups.sh" --bootstrap-server "${KAFKA_BOOTSTRAP_SERVERS}" \
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

# Committed offsets. A partition a group has committed on keeps its offset: only the missing
# ones are set, to the earliest retained offset, so nothing still in the topic is skipped. A
# group with a running member cannot be reset (Kafka refuses while it is not empty); it commits
# its own offsets as it consumes, so it is left alone.
grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "${dir}/consumers.txt" |
  while read -r topic consumer_groups; do
    partitions="$(topics --describe --topic "${topic}" |
      sed -n 's/.*PartitionCount:[[:space:]]*\([0-9][0-9]*\).*/\1/p' | head -n 1)"
    if [ -z "${partitions}" ]; then
      echo "error: cannot read the partition count of ${topic}" >&2
      exit 1
    fi
    for group in ${consumer_groups}; do
      # Columns: GROUP TOPIC PARTITION CURRENT-OFFSET ...; "-" where nothing is committed. A group
      # that does not exist yet has no rows (and an error on stderr).
      committed="$(groups --describe --group "${group}" 2>/dev/null |
        awk -v t="${topic}" '$2 == t && $4 ~ /^[0-9]+$/ { print $3 }')"
      missing=""
      p=0
      while [ "${p}" -lt "${partitions}" ]; do
        printf '%s\n' "${committed}" | grep -qx "${p}" || missing="${missing:+${missing},}${p}"
        p=$((p + 1))
      done
      if [ -z "${missing}" ]; then
        echo "group ${group}: committed on every partition of ${topic}"
      elif out="$(groups --group "${group}" --topic "${topic}:${missing}" --reset-offsets --to-earliest --execute 2>&1)"; then
        echo "group ${group}: ${topic} partitions ${missing} now start at the earliest retained offset"
      elif printf '%s' "${out}" | grep -q 'inactive'; then
        echo "group ${group}: has a running member, which commits its own offsets; left alone"
      else
        printf '%s\n' "${out}" >&2
        echo "error: cannot set the committed offsets of group ${group} on ${topic}" >&2
        exit 1
      fi
    done
  done
