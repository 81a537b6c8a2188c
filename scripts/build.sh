#!/usr/bin/env bash
# Builds the worker into build/ (index.js + the optimised Wasm) with worker-build, and the
# operator console's static assets into public/ (wrangler.toml [assets]): console/ as it is, its
# `_headers` at the root, and uPlot from node_modules (the pinned npm package) under vendor/. worker-build would
# download wasm-bindgen, wasm-opt and esbuild; the three variables point it at the copies that
# scripts/setup.sh installed (cargo and npm), so the build needs no network.
# Used by wrangler.toml's [build] command, the dev command and the test command.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen)}"
export WASM_OPT_BIN="${WASM_OPT_BIN:-$PWD/node_modules/.bin/wasm-opt}"
export ESBUILD_BIN="${ESBUILD_BIN:-$PWD/node_modules/.bin/esbuild}"

rm -rf public
mkdir -p public/console/vendor
cp console/*.html console/*.js console/*.css console/*.svg public/console/
cp console/_headers public/_headers
cp node_modules/uplot/dist/uPlot.esm.js node_modules/uplot/dist/uPlot.min.css node_modules/uplot/LICENSE public/console/vendor/

exec worker-build --release "$@"
