#!/usr/bin/env bash
# The official Python MCP SDK (`mcp` on PyPI, pinned here and only here) in a venv cached outside
# the repo, for system-tests/tests/mcp.rs (`make test`): installs it on first use and prints the
# venv's python on stdout.
#
# Needs python3 (3.10 or later: the SDK's floor) with venv and network access to PyPI on first
# use; Debian/Ubuntu: apt-get install python3-venv (.ci/run does).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

MCP_PYTHON_SDK_VERSION=2.3.0

install() {
  command -v python3 >/dev/null 2>&1 || die "mcp-python: python3 not found: install python3 (3.10+) and python3-venv"
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || die "mcp-python: the MCP SDK ${MCP_PYTHON_SDK_VERSION} needs python 3.10+, python3 is $(python3 -V 2>&1)"
  python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || die "mcp-python: python3 cannot create a venv: apt-get install python3-venv"
  info "mcp-python: installing mcp ${MCP_PYTHON_SDK_VERSION} (the official Python MCP SDK) into $1"
  python3 -m venv "$1"
  "$1/bin/pip" install --quiet --disable-pip-version-check "mcp==${MCP_PYTHON_SDK_VERSION}" >&2
  "$1/bin/python" -c 'import mcp, httpx2' >&2
}

cache="${XDG_CACHE_HOME:-$HOME/.cache}/todo-functions/mcp-python-${MCP_PYTHON_SDK_VERSION}"
install_once "${cache}" install
echo "${cache}/bin/python"
