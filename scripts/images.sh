#!/usr/bin/env bash
# Builds the function images from the one Dockerfile, one per function, sharing the workspace
# build (BuildKit reuses the `build` stage across the six builds), and checks each stays under
# the size budget. Optionally pushes them.
#
#   scripts/images.sh                      # all six, todo-functions/<fn>:dev
#   scripts/images.sh create-task          # just one
#   IMAGE_REPO=ghcr.io/me/todo IMAGE_TAG=$(git rev-parse HEAD) PUSH=1 scripts/images.sh
#
# Environment:
#   IMAGE_REPO   repository prefix (default todo-functions): images are $IMAGE_REPO/<function>
#   IMAGE_TAG    tag (default dev); never `latest`
#   PUSH=1       push after building (log in to the registry first)
#   DIGESTS_FILE with PUSH=1: write `<function>=sha256:<hex>` per pushed image (the registry's
#                digest), the format scripts/deploy-cloud.sh reads as IMAGE_DIGESTS_FILE so
#                that a deployment names exactly the pushed bytes, never a movable tag
#   PLATFORM     target platform (default: the build machine's), e.g. linux/amd64
#   CACHE_REF    registry ref for BuildKit's cache (CI): read always, written when PUSH=1
#   MAX_IMAGE_MB size budget per image (default 20)
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

IMAGE_REPO="${IMAGE_REPO:-todo-functions}"
IMAGE_TAG="${IMAGE_TAG:-dev}"
MAX_IMAGE_MB="${MAX_IMAGE_MB:-20}"

require_tools "docker|Install Docker (https://docs.docker.com/engine/install/) with BuildKit (Docker 23+)."
docker info >/dev/null 2>&1 || die "docker is installed but its daemon is not reachable (is Docker running? are you in the docker group?)"
[ "${IMAGE_TAG}" != latest ] || die "IMAGE_TAG=latest is not allowed: tag images with a commit SHA or a version"

selected=("$@")
[ "${#selected[@]}" -gt 0 ] || selected=("${FUNCTIONS[@]}")
for fn in "${selected[@]}"; do
  case " ${FUNCTIONS[*]} " in
    *" ${fn} "*) ;;
    *) die "unknown function '${fn}' (one of: ${FUNCTIONS[*]})" ;;
  esac
done

build=(docker build)
if docker buildx version >/dev/null 2>&1; then
  # buildx: cache import/export and --load into the local image store.
  build=(docker buildx build --load)
  if [ -n "${CACHE_REF:-}" ]; then
    build+=(--cache-from "type=registry,ref=${CACHE_REF}")
    if [ "${PUSH:-0}" = 1 ]; then
      build+=(--cache-to "type=registry,ref=${CACHE_REF},mode=max")
    fi
  fi
else
  export DOCKER_BUILDKIT=1
  [ -z "${CACHE_REF:-}" ] || warn "CACHE_REF needs docker buildx; building without a registry cache"
fi
[ -z "${PLATFORM:-}" ] || build+=(--platform "${PLATFORM}")

revision="$(git -C "${ROOT}" rev-parse HEAD 2>/dev/null || echo unknown)"
if [ -n "${DIGESTS_FILE:-}" ]; then
  [ "${PUSH:-0}" = 1 ] || die "DIGESTS_FILE needs PUSH=1: only a pushed image has a registry digest"
  mkdir -p "$(dirname "${DIGESTS_FILE}")"
  : >"${DIGESTS_FILE}"
fi
max_bytes=$((MAX_IMAGE_MB * 1000 * 1000))
for fn in "${selected[@]}"; do
  image="${IMAGE_REPO}/${fn}:${IMAGE_TAG}"
  log "Building ${image}"
  "${build[@]}" \
    --file "${ROOT}/Dockerfile" \
    --build-arg "FUNCTION=${fn}" \
    --label "org.opencontainers.image.revision=${revision}" \
    --label "org.opencontainers.image.version=${IMAGE_TAG}" \
    --tag "${image}" \
    "${ROOT}"
  size="$(docker image inspect --format '{{.Size}}' "${image}")"
  info "${image}: $((size / 1000)) kB"
  [ "${size}" -le "${max_bytes}" ] ||
    die "${image} is $((size / 1000 / 1000)) MB, over the ${MAX_IMAGE_MB} MB budget"
  if [ "${PUSH:-0}" = 1 ]; then
    docker push "${image}"
    if [ -n "${DIGESTS_FILE:-}" ]; then
      # The registry's digest of what was just pushed (RepoDigests: <repo>@sha256:<hex>).
      digest="$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "${image}" |
        sed -n "s|^${IMAGE_REPO}/${fn}@\(sha256:[0-9a-f]\{64\}\)\$|\1|p" | head -n1)"
      [ -n "${digest}" ] || die "no registry digest for ${image} after the push"
      echo "${fn}=${digest}" >>"${DIGESTS_FILE}"
      info "${IMAGE_REPO}/${fn}@${digest}"
    fi
  fi
done
log "Images built: ${selected[*]} (${IMAGE_REPO}/<function>:${IMAGE_TAG})"
