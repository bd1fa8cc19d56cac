#!/usr/bin/env bash
# The npm dependencies of examples/node-orders (the official Dapr JavaScript SDK, pinned by its
# package-lock.json), installed with `npm ci` into a directory cached outside the repo and keyed
# by the lock file's hash, for system-tests/tests/node_example.rs (`make test`). Prints that
# directory on stdout; its node_modules is what the example's apps load.
#
# Needs Node.js 20+ with npm, and the npm registry on first use; Debian/Ubuntu:
# apt-get install nodejs npm (.ci/run does).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

example="$(cd "$(dirname "$0")/../examples/node-orders" && pwd)"

install() {
  command -v npm >/dev/null 2>&1 || die "node-example: npm not found: install Node.js 20+ with npm (apt-get install nodejs npm)"
  info "node-example: npm ci of ${example} into $1"
  mkdir -p "$1"
  cp "${example}/package.json" "${example}/package-lock.json" "$1/"
  (cd "$1" && npm ci --no-audit --no-fund --silent >&2)
  [[ -f "$1/node_modules/@dapr/dapr/package.json" ]] || die "node-example: npm ci left no @dapr/dapr"
}

hash="$(sha256sum "${example}/package-lock.json" | cut -c1-16)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/todo-functions/node-orders-${hash}"
install_once "${cache}" install
echo "${cache}"
