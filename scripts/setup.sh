#!/usr/bin/env bash
# Installs whatever the build and tests need and is missing, at the pinned versions: the wasm32
# target, worker-build, the wasm-bindgen CLI that matches Cargo.lock, and the npm tools
# (wrangler, miniflare, binaryen's wasm-opt, playwright-core, uPlot) from package-lock.json, and
# the headless Chromium the browser suite drives (apt on Debian and Ubuntu; elsewhere it says what
# to install; `--no-browser` skips it). A second run installs nothing. Needs only rustup/cargo,
# Node 20 and npm.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

WORKER_BUILD_VERSION=0.8.7
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)

say() { printf 'setup: %s\n' "$*"; }

for tool in cargo rustup node npm; do
  command -v "$tool" >/dev/null || { say "$tool is required but not on PATH"; exit 1; }
done
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || { say "Node 20 or newer is required (found $(node --version))"; exit 1; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if [ "$(worker-build --version 2>/dev/null | awk '{print $NF}')" != "$WORKER_BUILD_VERSION" ]; then
  say "installing worker-build $WORKER_BUILD_VERSION (about 5 minutes, once)"
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked
fi

if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $NF}')" != "$WASM_BINDGEN_VERSION" ]; then
  say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION to match Cargo.lock (about 3 minutes, once)"
  # No --locked: its own lockfile pins a crate version some registry mirrors lack.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

# By content, not by date: a fresh checkout (or a git worktree whose node_modules is a link to
# another checkout's) has a newer package-lock.json but needs nothing, and `npm ci` would empty
# the linked directory under whoever else uses it.
npm_tools_match() {
  node -e '
    const fs = require("fs");
    const want = JSON.parse(fs.readFileSync("package-lock.json", "utf8")).packages;
    const have = JSON.parse(fs.readFileSync("node_modules/.package-lock.json", "utf8")).packages;
    const stale = Object.entries(want).filter(([path, pkg]) =>
      path && !(pkg.optional && !have[path]) && have[path]?.version !== pkg.version);
    process.exit(stale.length ? 1 : 0);' 2>/dev/null
}
if ! npm_tools_match; then
  say "installing the pinned npm tools (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi

# The browser suite (tests/e2e/console.test.mjs) drives the system's Chromium; playwright-core
# downloads no browser. `--no-browser` (the deploy command) skips it: a build needs none.
[ "${1:-}" = "--no-browser" ] && exit 0
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null && [ -z "${CHROMIUM_PATH:-}" ]; then
  if command -v apt-get >/dev/null; then
    as_root=""
    [ "$(id -u)" -eq 0 ] || as_root="sudo"
    say "installing Chromium with apt (the browser suite's headless browser)"
    $as_root apt-get update -qq
    # Debian's package is `chromium`; Ubuntu's is `chromium-browser`.
    DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq chromium \
      || DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq chromium-browser
  else
    say "the browser suite needs Chromium: install it with your package manager (its binary named"
    say "chromium or chromium-browser on PATH), or set CHROMIUM_PATH to a Chromium or Chrome binary"
    exit 1
  fi
fi
