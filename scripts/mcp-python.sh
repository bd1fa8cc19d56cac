#!/usr/bin/env bash
# The official Python MCP SDK (`mcp` on PyPI, pinned here and only here) in a venv cached outside
# the repo, for system-tests/tests/mcp.rs (`make test`): installs it on first use and prints the
# venv's python on stdout. Concurrent callers wait for one install (flock); a half-finished
# install is never used (the marker file is written last).
#
# Needs python3 (3.10 or later: the SDK's floor) with venv and network access to PyPI on first
# use; Debian/Ubuntu: apt-get install python3-venv (.ci/run does).
set -euo pipefail

MCP_PYTHON_SDK_VERSION=2.3.0

cache="${XDG_CACHE_HOME:-$HOME/.cache}/todo-functions/mcp-python-$MCP_PYTHON_SDK_VERSION"
ready="$cache/.installed"

if [[ ! -f "$ready" ]]; then
  command -v python3 >/dev/null 2>&1 || { echo "mcp-python: python3 not found: install python3 (3.10+) and python3-venv" >&2; exit 1; }
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || { echo "mcp-python: the MCP SDK $MCP_PYTHON_SDK_VERSION needs python 3.10+, python3 is $(python3 -V 2>&1)" >&2; exit 1; }
  python3 -c 'import ensurepip, venv' >/dev/null 2>&1 \
    || { echo "mcp-python: python3 cannot create a venv: apt-get install python3-venv" >&2; exit 1; }
  mkdir -p "$(dirname "$cache")"
  exec 9>"$cache.lock"
  flock 9
  if [[ ! -f "$ready" ]]; then
    echo "mcp-python: installing mcp $MCP_PYTHON_SDK_VERSION (the official Python MCP SDK) into $cache" >&2
    rm -rf "$cache"
    python3 -m venv "$cache"
    "$cache/bin/pip" install --quiet --disable-pip-version-check "mcp==$MCP_PYTHON_SDK_VERSION" >&2
    "$cache/bin/python" -c 'import mcp, httpx2' >&2
    touch "$ready"
  fi
fi
echo "$cache/bin/python"
