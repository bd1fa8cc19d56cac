#!/usr/bin/env bash
# Offline validation of every deployment artifact (make check-manifests; CI runs it too):
#   1. kubectl kustomize renders both overlays and the monitoring manifests;
#   2. built-in kinds pass kubernetes-validate --strict (oldest and newest supported Kubernetes);
#   3. Dapr, KEDA and Prometheus Operator resources pass the JSON schemas kept in schemas/;
#   4. the schemas themselves are valid JSON Schema, the Grafana dashboard is valid JSON;
#   5. hadolint (Dockerfile), actionlint and zizmor (workflows), shellcheck (scripts), yamllint;
#   6. the pipeline's supply-chain rules (scripts/check_pipeline.py: permissions, pinning, SBOM,
#      provenance, signing, scanning, cargo deny, production refs, OIDC, deploy by digest) and
#      that the deploy scripts pin every image by digest when given digests.
# The rendered overlays are left in target/manifests/ for inspection; the Rust consistency test
# (system-tests/tests/manifests.rs) renders them itself, with the same pinned kubectl when
# target/deploy-tools exists.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

bin="$("${ROOT}/scripts/lint-tools.sh")"
# The pinned kubectl of the tools virtualenv renders (the same kustomize everywhere).
kubectl="${bin}/kubectl"
# Oldest supported (native sidecars, preStop sleep) and the version CI's kind cluster runs.
KUBE_VERSIONS="${KUBE_VERSIONS:-1.30.0 1.34.0}"
out="${ROOT}/target/manifests"
rm -rf "${out}"
mkdir -p "${out}"
failed=0
step() { log "$*"; }
fail() {
  printf 'FAILED: %s\n' "$*" >&2
  failed=1
}

step "Rendering (kubectl kustomize)"
for target in overlays/minikube overlays/cloud monitoring; do
  name="${target##*/}"
  if "${kubectl}" kustomize "${ROOT}/manifests/${target}" >"${out}/${name}.yaml"; then
    info "manifests/${target}: $(grep -c '^kind:' "${out}/${name}.yaml") resources"
  else
    fail "kubectl kustomize manifests/${target}"
  fi
done
if grep -n "SET_BY_OVERLAY" "${out}"/*.yaml >&2; then
  fail "placeholders left in the rendered manifests (a replacement did not apply)"
fi

step "Splitting by validator"
for name in minikube cloud monitoring; do
  "${bin}/python" "${ROOT}/scripts/split_manifests.py" "${ROOT}/schemas" "${out}/${name}" "${out}/${name}.yaml" ||
    fail "splitting ${name}"
done
"${bin}/python" "${ROOT}/scripts/split_manifests.py" "${ROOT}/schemas" "${out}/platform" \
  "${ROOT}"/manifests/platform/minikube/*.yaml || fail "splitting manifests/platform/minikube"

step "Built-in kinds: kubernetes-validate --strict (Kubernetes ${KUBE_VERSIONS})"
for version in ${KUBE_VERSIONS}; do
  for name in minikube cloud; do
    "${bin}/kubernetes-validate" --strict --quiet -k "${version}" "${out}/${name}/builtin"/*.yaml ||
      fail "kubernetes-validate ${name} (Kubernetes ${version})"
  done
done

step "Dapr, KEDA and Prometheus Operator resources: JSON schemas in schemas/"
"${bin}/check-jsonschema" --check-metaschema "${ROOT}"/schemas/*/*.json || fail "schemas/ are not valid JSON Schema"
while IFS= read -r dir; do
  schema="${dir#*/schema/}"
  # shellcheck disable=SC2046 # one argument per document file
  "${bin}/check-jsonschema" --schemafile "${ROOT}/schemas/${schema}" $(find "${dir}" -name '*.yaml' | sort) ||
    fail "${schema}"
done < <(find "${out}" -mindepth 3 -type d -path '*/schema/*' -name '*.json' | sort)
if [ -s "${out}/platform/unchecked.txt" ]; then
  info "not schema-checked (validated by their operators on apply):"
  sed 's/^/      /' "${out}/platform/unchecked.txt" >&2
fi
"${bin}/python" -m json.tool "${ROOT}/manifests/monitoring/dashboards/todo-functions.json" >/dev/null ||
  fail "the Grafana dashboard is not valid JSON"

step "Deploy script guards (scripts/deploy-cloud.sh, scripts/lib.sh)"
# The cloud deploy refuses what would weaken the trust boundaries, before it changes anything:
# run without a cluster (DRY_RUN=1 renders only), with the pinned kubectl first on PATH.
guard_env=(env -i "PATH=${bin}:${PATH}" "HOME=${HOME}" DRY_RUN=1 REGISTRY=registry.example.com/todo IMAGE_TAG=abc123
  KUBE_CONTEXT=none KAFKA_BROKERS=kafka-1.example.com:9093 API_HOST=todo.example.com
  KAFKA_EGRESS_CIDR=10.20.0.0/24 POSTGRES_EGRESS_CIDR=10.30.0.0/24 OIDC_EGRESS_CIDR=10.40.0.0/24
  SMTP_EGRESS_CIDR=10.50.0.25/32)
# expect_refusal <what> <message it must print> <extra env>...
expect_refusal() {
  local what="$1" message="$2" output
  shift 2
  if output="$("${guard_env[@]}" "$@" "${ROOT}/scripts/deploy-cloud.sh" 2>&1)"; then
    fail "deploy-cloud accepted ${what}"
  elif ! grep -q -- "${message}" <<<"${output}"; then
    fail "deploy-cloud refused ${what} without saying '${message}': ${output##*error: }"
  fi
}
expect_refusal "no JWT_ISSUER" "JWT_ISSUER is not set" JWT_AUDIENCE=todo-api JWT_JWKS_URL=https://idp.example.com/jwks
expect_refusal "no JWT_AUDIENCE" "JWT_AUDIENCE is not set" JWT_ISSUER=https://idp.example.com/ JWT_JWKS_URL=https://idp.example.com/jwks
expect_refusal "neither a JWKS URL nor an HS256 key" "JWT_JWKS_URL" JWT_ISSUER=https://idp.example.com/ JWT_AUDIENCE=todo-api
expect_refusal "a JWKS URL task-api may not reach" "OIDC_EGRESS_CIDR is not set" OIDC_EGRESS_CIDR= \
  JWT_ISSUER=https://idp.example.com/ JWT_AUDIENCE=todo-api JWT_JWKS_URL=https://idp.example.com/jwks
expect_refusal "the placeholder egress range" "documentation range" JWT_ISSUER=https://idp.example.com/ \
  JWT_AUDIENCE=todo-api JWT_JWKS_URL=https://idp.example.com/jwks KAFKA_EGRESS_CIDR=192.0.2.0/24
expect_refusal "no SMTP relay range" "SMTP_EGRESS_CIDR is not set" SMTP_EGRESS_CIDR= \
  JWT_ISSUER=https://idp.example.com/ JWT_AUDIENCE=todo-api JWT_JWKS_URL=https://idp.example.com/jwks
expect_refusal "the placeholder SMTP relay range" "documentation range" JWT_ISSUER=https://idp.example.com/ \
  JWT_AUDIENCE=todo-api JWT_JWKS_URL=https://idp.example.com/jwks SMTP_EGRESS_CIDR=192.0.2.2/32
if "${guard_env[@]}" JWT_ISSUER=https://idp.example.com/ JWT_AUDIENCE=todo-api JWT_JWKS_URL=https://idp.example.com/jwks \
  "${ROOT}/scripts/deploy-cloud.sh" >/dev/null 2>"${out}/deploy-cloud.log"; then
  for want in "cidr: 10.20.0.0/24" "cidr: 10.30.0.0/24" "cidr: 10.40.0.0/24" "cidr: 10.50.0.25/32" "jwt-issuer: https://idp.example.com/" "jwt-audience: todo-api"; do
    grep -qF "${want}" "${ROOT}/target/deploy/cloud.yaml" || fail "deploy-cloud's dry run did not render '${want}'"
  done
else
  fail "deploy-cloud's dry run failed with every setting given: $(tail -3 "${out}/deploy-cloud.log")"
fi
# Every PostgreSQL connection string verifies the server; the value is never echoed.
(
  for good in "host=db port=5432 user=u password=<p> dbname=todo sslmode=verify-full" \
    "postgres://u:<p>@db:5432/todo?sslmode=verify-full&sslrootcert=system"; do
    (require_verify_full GOOD "${good}") 2>/dev/null || fail "require_verify_full refused a verify-full string"
  done
  for bad in "host=db user=u password=<p> dbname=todo" "host=db sslmode=require" \
    "postgres://u:<p>@db/todo?sslmode=verify-ca" "host=db sslmode=verify-full sslmode=disable"; do
    if message="$( (require_verify_full BAD "${bad}") 2>&1)"; then
      fail "require_verify_full accepted a connection string without sslmode=verify-full"
    elif grep -qF "<p>" <<<"${message}"; then
      fail "require_verify_full printed the connection string"
    fi
  done
  exit "${failed}"
) || failed=1
# A changed Secret restarts exactly the functions that read it: the checksum on each pod
# template moves with that function's Secrets and only with them. `kube` is replaced by the
# listing the real one prints (name, then key=base64 pairs in key order).
(
  listing=$'create-task-app-api-token token=YQ==,\njwt secret=Yg==,\nother x=Yw==,\ntask-api-dapr-api-token token=ZA==,\n'
  # shellcheck disable=SC2329 # called by secrets_checksum
  kube() { printf '%s' "${listing}"; }
  api="$(secrets_checksum task-api)" worker="$(secrets_checksum create-task)"
  listing="${listing/secret=Yg==/secret=Zg==}"
  [ "$(secrets_checksum task-api)" != "${api}" ] || fail "secrets_checksum: task-api's did not change with Secret jwt"
  [ "$(secrets_checksum create-task)" = "${worker}" ] || fail "secrets_checksum: create-task's changed with Secret jwt"
  api="$(secrets_checksum task-api)"
  listing="${listing/x=Yw==/x=eA==}"
  [ "$(secrets_checksum task-api)" = "${api}" ] || fail "secrets_checksum: changed with a Secret no function reads"
  listing="${listing/token=YQ==/token=eQ==}"
  [ "$(secrets_checksum create-task)" != "${worker}" ] ||
    fail "secrets_checksum: create-task's did not change with its app token"
  [ "$(secrets_checksum_patches | grep -c 'todo-functions/secrets-checksum: "[0-9a-f]\{32\}"')" = "${#FUNCTIONS[@]}" ] ||
    fail "secrets_checksum_patches does not stamp every function's pod template"
  exit "${failed}"
) || failed=1

step "Dockerfile: hadolint"
"${bin}/hadolint" "${ROOT}/Dockerfile" || fail "hadolint"

step "Workflows: actionlint, zizmor"
"${bin}/actionlint" -shellcheck="${bin}/shellcheck" "${ROOT}"/.github/workflows/*.yml || fail "actionlint"
"${bin}/zizmor" --offline --no-progress --color never "${ROOT}/.github" || fail "zizmor"

step "Pipeline rules: scripts/check_pipeline.py (self-test, then the repository)"
"${bin}/python" "${ROOT}/scripts/check_pipeline.py" --self-test "${ROOT}" || fail "check_pipeline.py self-test"
"${bin}/python" "${ROOT}/scripts/check_pipeline.py" "${ROOT}" || fail "pipeline rules"

step "Deploy by digest: images_kustomization with IMAGE_DIGESTS_FILE (scripts/lib.sh)"
digests="${out}/image-digests.env"
for fn in "${FUNCTIONS[@]}"; do
  printf '%s=sha256:%s\n' "${fn}" "$(printf '%s' "${fn}" | sha256sum | cut -d' ' -f1)"
done >"${digests}"
if (
  PATH="${bin}:${PATH}"
  IMAGE_DIGESTS_FILE="${digests}"
  render_overlay manifests/overlays/cloud "${out}/cloud-by-digest.yaml" \
    "$(images_kustomization ghcr.io/example/todo mutable-tag ghcr.io/todo-functions/todo-functions)"
); then
  for fn in "${FUNCTIONS[@]}"; do
    want="image: ghcr.io/example/todo/${fn}@$(sed -n "s/^${fn}=//p" "${digests}")"
    grep -qF "${want}" "${out}/cloud-by-digest.yaml" || fail "cloud overlay by digest: no '${want}'"
  done
  ! grep -n "mutable-tag" "${out}/cloud-by-digest.yaml" >&2 || fail "cloud overlay by digest still names a tag"
else
  fail "rendering the cloud overlay with IMAGE_DIGESTS_FILE"
fi
# A digest missing for one function is an error, never a silent fallback to the tag.
grep -v '^audit-writer=' "${digests}" >"${digests}.partial"
if (IMAGE_DIGESTS_FILE="${digests}.partial" images_kustomization r t >/dev/null 2>&1); then
  fail "images_kustomization accepted a digests file without audit-writer"
fi

step "Scripts: shellcheck"
"${bin}/shellcheck" "${ROOT}"/scripts/*.sh "${ROOT}/manifests/base/kafka-topics/create-topics.sh" ||
  fail "shellcheck"

step "YAML: yamllint"
"${bin}/yamllint" --strict -c "${ROOT}/scripts/yamllint.yaml" \
  "${ROOT}/manifests" "${ROOT}/dapr-components/k8s" "${ROOT}/keda" "${ROOT}/.github" || fail "yamllint"

if [ "${failed}" -ne 0 ]; then
  die "manifest checks failed (see FAILED lines above)"
fi
log "All deployment artifacts are valid"
