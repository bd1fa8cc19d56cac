#!/usr/bin/env bash
# Installs the pinned validators of scripts/lint-requirements.txt into a virtualenv under
# target/ (re-created only when the pins change) and prints its bin directory. Needs Python 3.9+
# with venv and PyPI access (the first run only).
#
#   scripts/lint-tools.sh              # the validators; prints their bin directory
#   scripts/lint-tools.sh cargo-deny   # the pinned cargo-deny; prints the path of its binary
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

# cargo-deny (deny.toml, `make lint`): built from crates.io with its own lock file, never a
# prebuilt binary, into the user's cache keyed by its version, outside the clone: it is slow to
# build (cold: ~12 minutes measured on a busy 2-core machine), and CI runs on fresh clones.
CARGO_DENY_VERSION=0.20.2
if [ "${1:-}" = cargo-deny ]; then
  deny_root="${CARGO_DENY_ROOT:-${XDG_CACHE_HOME:-${HOME}/.cache}/todo-functions/cargo-deny-${CARGO_DENY_VERSION}}"
  if [ ! -x "${deny_root}/bin/cargo-deny" ]; then
    command -v cargo >/dev/null 2>&1 || die "cargo is required to install cargo-deny (https://rustup.rs)"
    info "installing cargo-deny ${CARGO_DENY_VERSION} into ${deny_root} (once, a few minutes)"
    # Its own temporary target directory: the workspace's CARGO_TARGET_DIR stays untouched.
    env -u CARGO_TARGET_DIR cargo install --quiet --locked "cargo-deny@${CARGO_DENY_VERSION}" \
      --root "${deny_root}" >&2 ||
      die "could not install cargo-deny ${CARGO_DENY_VERSION} from crates.io (see cargo's output above)"
  fi
  echo "${deny_root}/bin/cargo-deny"
  exit 0
fi
[ "$#" -eq 0 ] || die "unknown argument '$1' (none, or cargo-deny)"

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
