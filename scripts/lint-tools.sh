#!/usr/bin/env bash
# Installs the pinned validators of scripts/lint-requirements.txt into a virtualenv under
# target/ (re-created only when the pins change) and prints its bin directory. Needs Python 3.9+
# with venv and PyPI access (the first run only).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

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
