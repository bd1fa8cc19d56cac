#!/usr/bin/env bash
# `mcp-remote` (npm), the stdio-to-HTTP bridge the README's Claude Desktop configuration runs
# with `npx`, pinned here and only here, installed into a directory cached outside the repo for
# system-tests/tests/mcp.rs (`make test`). Prints that directory on stdout: `npx mcp-remote` run
# there uses this install (a local dependency) and never asks the registry.
#
# Needs Node.js 20.18.1 or later with npm (mcp-remote's undici 7 needs it) and the npm registry
# on first use; Debian/Ubuntu: apt-get install nodejs npm (.ci/run does).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

MCP_REMOTE_VERSION=0.15.1

install() {
  command -v npm >/dev/null 2>&1 || die "mcp-remote: npm not found: install Node.js 20.18.1+ with npm (apt-get install nodejs npm)"
  node -e 'const [a, b, c] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && (b > 18 || (b === 18 && c >= 1))) ? 0 : 1)' \
    || die "mcp-remote: mcp-remote ${MCP_REMOTE_VERSION} needs Node.js 20.18.1+, node is $(node --version)"
  info "mcp-remote: installing mcp-remote ${MCP_REMOTE_VERSION} into $1"
  mkdir -p "$1"
  (cd "$1" && npm init -y >/dev/null && npm install --no-audit --no-fund --silent --save-exact "mcp-remote@${MCP_REMOTE_VERSION}" >&2)
  [[ -x "$1/node_modules/.bin/mcp-remote" ]] || die "mcp-remote: the install left no mcp-remote binary"
}

cache="${XDG_CACHE_HOME:-$HOME/.cache}/todo-functions/mcp-remote-${MCP_REMOTE_VERSION}"
install_once "${cache}" install
echo "${cache}"
