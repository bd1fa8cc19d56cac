#!/usr/bin/env bash
# `mcp-remote` (npm), the stdio-to-HTTP bridge the README's Claude Desktop configuration runs
# with `npx`, pinned here and only here, installed into a directory cached outside the repo for
# system-tests/tests/mcp.rs (`make test`). Prints that directory on stdout: `npx mcp-remote` run
# there uses this install (a local dependency) and never asks the registry. Concurrent callers
# wait for one install (flock); a half-finished install is never used (the marker is written
# last).
#
# Needs Node.js 20.18.1 or later with npm (mcp-remote's undici 7 needs it) and the npm registry
# on first use; Debian/Ubuntu: apt-get install nodejs npm (.ci/run does).
set -euo pipefail

MCP_REMOTE_VERSION=0.15.1

cache="${XDG_CACHE_HOME:-$HOME/.cache}/todo-functions/mcp-remote-$MCP_REMOTE_VERSION"
ready="$cache/.installed"

if [[ ! -f "$ready" ]]; then
  command -v npm >/dev/null 2>&1 || { echo "mcp-remote: npm not found: install Node.js 20.18.1+ with npm (apt-get install nodejs npm)" >&2; exit 1; }
  node -e 'const [a, b, c] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && (b > 18 || (b === 18 && c >= 1))) ? 0 : 1)' \
    || { echo "mcp-remote: mcp-remote $MCP_REMOTE_VERSION needs Node.js 20.18.1+, node is $(node --version)" >&2; exit 1; }
  mkdir -p "$(dirname "$cache")"
  exec 9>"$cache.lock"
  flock 9
  if [[ ! -f "$ready" ]]; then
    echo "mcp-remote: installing mcp-remote $MCP_REMOTE_VERSION into $cache" >&2
    rm -rf "$cache"
    mkdir -p "$cache"
    (cd "$cache" && npm init -y >/dev/null && npm install --no-audit --no-fund --silent --save-exact "mcp-remote@$MCP_REMOTE_VERSION" >&2)
    [[ -x "$cache/node_modules/.bin/mcp-remote" ]] || { echo "mcp-remote: the install left no mcp-remote binary" >&2; exit 1; }
    touch "$ready"
  fi
fi
echo "$cache"
