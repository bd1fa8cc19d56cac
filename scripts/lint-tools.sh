#!/usr/bin/env bash
# Installs the pinned validators of scripts/lint-requirements.txt into a virtualenv under
# target/ (re-created only when the pins change) and prints its bin directory. Needs Python 3.9+
# with venv and PyPI access (the first run only).
#
#   scripts/lint-tools.sh              # the validators; prints their bin directory
#   scripts/lint-tools.sh cargo-deny   # the pinned cargo-deny; prints the path of its binary
#   scripts/lint-tools.sh cargo-shear  # the pinned cargo-shear; prints the path of its binary
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

# cargo-deny (deny.toml: licences, bans, sources) and cargo-shear (dependencies nothing imports,
# or that only tests use outside [dev-dependencies]), `make lint`: built from crates.io with
# their own lock files, never prebuilt binaries, into the user's cache keyed by version, outside
# the clone: they are slow to build (cargo-deny cold: ~12 minutes measured on a busy 2-core
# machine), and CI runs on fresh clones. cargo-shear 1.14 needs rustc 1.98; 1.13 builds on 1.95.
CARGO_DENY_VERSION=0.20.2
CARGO_SHEAR_VERSION=1.13.0
cargo_tool() {
  local name="$1" version="$2"
  local root="${XDG_CACHE_HOME:-${HOME}/.cache}/todo-functions/${name}-${version}"
  if [ ! -x "${root}/bin/${name}" ]; then
    command -v cargo >/dev/null 2>&1 || die "cargo is required to install ${name} (https://rustup.rs)"
    info "installing ${name} ${version} into ${root} (once, a few minutes)"
    # Its own temporary target directory: the workspace's CARGO_TARGET_DIR stays untouched.
    env -u CARGO_TARGET_DIR cargo install --quiet --locked "${name}@${version}" --root "${root}" >&2 ||
      die "could not install ${name} ${version} from crates.io (see cargo's output above)"
  fi
  echo "${root}/bin/${name}"
}
case "${1:-}" in
  cargo-deny) cargo_tool cargo-deny "${CARGO_DENY_VERSION}"; exit 0 ;;
  cargo-shear) cargo_tool cargo-shear "${CARGO_SHEAR_VERSION}"; exit 0 ;;
esac
[ "$#" -eq 0 ] || die "unknown argument '$1' (none, cargo-deny or cargo-shear)"

python="${PYTHON:-python3}"
command -v "${python}" >/dev/null 2>&1 ||
  die "python3 is required for the manifest checks (apt-get install python3 python3-venv, or brew install python)"
"${python}" -c 'import venv, ensurepip' 2>/dev/null ||
  die "python3's venv module is missing (Debian/Ubuntu: apt-get install python3-venv)"

tools="${DEPLOY_TOOLS_DIR:-${ROOT}/target/deploy-tools}"
requirements="${ROOT}/scripts/lint-requirements.txt"
stamp="${tools}/requirements.sha256"
want="$(sha256sum "${requirements}" 2>/dev/null | cut -d' ' -f1 || shasum -a 256 "${requirements}" | cut -d' ' -f1)"
if [ ! -x "${tools}/bin/check-jsonschema" ] || [ "$(cat "${stamp}" 2>/dev/null)" != "${want}" ]; then
  info "installing the manifest validators into ${tools} (once)"
  rm -rf "${tools}"
  "${python}" -m venv "${tools}"
  "${tools}/bin/pip" install --quiet --disable-pip-version-check --no-input -r "${requirements}" ||
    die "could not install the validators from PyPI (see the pip output above)"
  echo "${want}" >"${stamp}"
fi
echo "${tools}/bin"
