#!/usr/bin/env bash
# Builds the worker into build/ (index.js + the optimised Wasm) with worker-build. worker-build would
# download wasm-bindgen, wasm-opt and esbuild; the three variables point it at the copies that
# scripts/setup.sh installed (cargo and npm), so the build needs no network.
# Used by wrangler.toml's [build] command, the dev command and the test command.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen)}"
export WASM_OPT_BIN="${WASM_OPT_BIN:-$PWD/node_modules/.bin/wasm-opt}"
export ESBUILD_BIN="${ESBUILD_BIN:-$PWD/node_modules/.bin/esbuild}"
exec worker-build --release "$@"
