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
