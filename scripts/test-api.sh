#!/usr/bin/env bash
# `make test-api`: schemathesis (property-based, from the OpenAPI document) against a running
# task-api on devhost, with every check on (schemathesis 4's default, exceptions in
# scripts/schemathesis.toml), including response-schema conformance. The store is
# seeded first with tasks that have reminders (both kinds), recurrences (with skipped dates),
# tags, a completed, a reopened and a deleted task, so the responses it validates carry every
# optional part of a task, not only what the fuzzer manages to create. Before it, the README's
# API examples run as written against the same system.
#
# Installs schemathesis (PyPI, pinned) into a venv cached outside the repo. The run is
# reproducible (fixed seed); SCHEMATHESIS_SEED=random, SCHEMATHESIS_MAX_EXAMPLES=N to explore.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

SCHEMATHESIS_VERSION=4.32.5
seed="${SCHEMATHESIS_SEED:-20261206}"
max_examples="${SCHEMATHESIS_MAX_EXAMPLES:-60}"
port="${TEST_API_PORT:-18080}"
base="http://127.0.0.1:$port"

cache="${XDG_CACHE_HOME:-$HOME/.cache}/todo-functions/schemathesis-$SCHEMATHESIS_VERSION"
if [[ ! -x "$cache/bin/schemathesis" ]]; then
  echo "test-api: installing schemathesis $SCHEMATHESIS_VERSION into $cache"
  rm -rf "$cache"
  python3 -m venv "$cache"
  "$cache/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

bin="${CARGO_TARGET_DIR:-$repo/target}/debug"
[[ -x "$bin/devhost" && -x "$bin/task-api" ]] || { echo "test-api: build first (cargo build --workspace)" >&2; exit 1; }

work="$(mktemp -d)"
devhost_pid=""
# shellcheck disable=SC2329 # called by the EXIT trap
cleanup() {
  if [[ -n "$devhost_pid" ]] && kill -0 "$devhost_pid" 2>/dev/null; then
    kill -TERM "$devhost_pid" 2>/dev/null || true
    wait "$devhost_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# dapr.yaml, with the built binaries wherever the target dir is and task-api on its own port
# (so a `make run` in another terminal does not collide). Sidecar ports are shifted as well.
sed -e "s#\./target/debug/#$bin/#" \
    -e "s#resourcesPath: \./#resourcesPath: $repo/#" \
    -e "s#appDirPath: \.#appDirPath: $repo#" \
    -e "s#appPort: 8080#appPort: $port#" \
    -e "s#appPort: 808\([1-4]\)#appPort: 1808\1#" \
    -e "s#daprHTTPPort: 350\([0-4]\)#daprHTTPPort: 1350\1#" \
    -e "s#RUST_LOG: info#RUST_LOG: warn#" \
    dapr.yaml > "$work/dapr.yaml"
grep -q "appPort: $port" "$work/dapr.yaml" || { echo "test-api: could not place task-api on port $port" >&2; exit 1; }

JWT_SECRET="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
export JWT_SECRET
# Thousands of requests from one user within a minute: the limit would answer most with 429.
export RATE_LIMIT_PER_MINUTE=0
export RUST_LOG=warn
"$bin/devhost" --run-file "$work/dapr.yaml" --db "$work/devhost.sqlite" > "$work/devhost.log" 2>&1 &
devhost_pid=$!

for _ in $(seq 1 300); do
  curl -fsS -o /dev/null "$base/openapi.json" 2>/dev/null && break
  kill -0 "$devhost_pid" 2>/dev/null || { cat "$work/devhost.log" >&2; echo "test-api: devhost exited" >&2; exit 1; }
  sleep 0.1
done
curl -fsS -o /dev/null "$base/openapi.json" || { cat "$work/devhost.log" >&2; echo "test-api: task-api did not come up on $base" >&2; exit 1; }

token="$("$bin/devhost" dev-token schemathesis)"
auth="Authorization: Bearer $token"

# The seed data. Every call must succeed: a seeding failure is a failure of this test.
create() {
  curl -fsS -H "$auth" -H 'Content-Type: application/json' -d "$1" "$base/v1/tasks" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
future="$(date -u -d '+30 days' +%Y-%m-%dT09:00:00+01:00)"
remind_at="$(date -u -d '+29 days' +%Y-%m-%dT08:00:00Z)"
create "{\"title\":\"Pay rent\",\"priority\":\"high\",\"tags\":[\"home\",\"money\"],\"due\":\"$future\",\"time_zone\":\"Europe/Berlin\",\"reminder\":{\"before_due_seconds\":3600},\"recurrence\":{\"rule\":\"FREQ=MONTHLY;BYMONTHDAY=31\"}}" > /dev/null
weekly="$(create "{\"title\":\"Team sync\",\"description\":\"Agenda in the doc\",\"due\":\"$future\",\"reminder\":{\"at\":\"$remind_at\"},\"recurrence\":{\"rule\":\"FREQ=DAILY;COUNT=30\",\"mode\":\"strict\"}}")"
# Skip the second occurrence: exdates appear in the stored recurrence.
second="$(date -u -d "$(date -u -d '+31 days' +%Y-%m-%d) 08:00" +%Y-%m-%dT08:00:00Z)"
curl -fsS -o /dev/null -X PATCH -H "$auth" -H 'Content-Type: application/merge-patch+json' \
  -d "{\"recurrence\":{\"exdates\":[\"$second\"]}}" "$base/v1/tasks/$weekly"
create "{\"title\":\"Water the plants\",\"due\":\"$future\",\"recurrence\":{\"rule\":\"FREQ=WEEKLY;INTERVAL=2\",\"mode\":\"after_completion\"},\"tags\":[\"home\"]}" > /dev/null
done_id="$(create '{"title":"File the report","priority":"urgent"}')"
curl -fsS -o /dev/null -X POST -H "$auth" "$base/v1/tasks/$done_id/complete"
reopened="$(create '{"title":"Call the bank","priority":"low"}')"
curl -fsS -o /dev/null -X POST -H "$auth" "$base/v1/tasks/$reopened/complete"
curl -fsS -o /dev/null -X POST -H "$auth" "$base/v1/tasks/$reopened/reopen"
gone="$(create '{"title":"Old idea"}')"
curl -fsS -o /dev/null -X DELETE -H "$auth" "$base/v1/tasks/$gone"

# The README's API examples, exactly as written, as a user on this fresh system would paste them:
# every call must succeed (curl --fail-with-body) and the values they pass on must be real.
readme="$(awk '/^```sh$/ { inside = 1; block = ""; next }
               /^```$/  { if (inside && block ~ /^# Create \(201\)/) printf "%s", block; inside = 0; next }
               inside   { block = block $0 "\n" }' README.md)"
[[ -n "$readme" ]] || { echo "test-api: the README's API examples (the block starting '# Create (201)') are missing" >&2; exit 1; }
echo "test-api: running the README's API examples"
if ! API="$base" TOKEN="$("$bin/devhost" dev-token alice)" bash -c '
    set -euo pipefail
    curl() { command curl --fail-with-body "$@"; }
    eval "$1"
    [[ "$ID" =~ ^[0-9a-f-]{36}$ ]] || { echo "ID is not a task id: $ID" >&2; exit 1; }
    [[ -n "$NEXT_CURSOR" ]] || { echo "the first page had no next_cursor" >&2; exit 1; }
    [[ "$NEXT_ID" =~ ^[0-9a-f-]{36}$ && "$NEXT_ID" != "$ID" ]] || { echo "NEXT_ID is not the next occurrence: $NEXT_ID" >&2; exit 1; }
  ' readme "$readme" > "$work/readme.log" 2>&1; then
  cat "$work/readme.log" >&2
  echo >&2
  echo "test-api: the README's API examples failed as written (output above)" >&2
  exit 1
fi

seed_args=(--seed "$seed")
[[ "$seed" == random ]] && seed_args=()

echo "test-api: schemathesis $SCHEMATHESIS_VERSION against $base (seed $seed, up to $max_examples cases per operation)"
status=0
# From the scratch directory: schemathesis keeps its example database in the working directory.
cd "$work"
"$cache/bin/schemathesis" --config-file "$repo/scripts/schemathesis.toml" run "$base/openapi.json" \
  --url "$base" \
  --header "$auth" \
  --max-examples "$max_examples" \
  "${seed_args[@]}" \
  --workers 1 \
  --request-timeout 10 \
  --report junit --report-dir "$work/report" \
  || status=$?

if [[ $status -ne 0 ]]; then
  echo "test-api: schemathesis found failures (exit $status); task-api's log follows" >&2
  tail -n 50 "$work/devhost.log" >&2
fi
exit $status
