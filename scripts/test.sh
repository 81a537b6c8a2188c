#!/usr/bin/env bash
# The test command: everything, in the order a failure is cheapest to find. Formatting and lints
# (native and wasm32), native unit tests of the core, the release Wasm build and its upload size,
# then the end-to-end suite: the built worker inside workerd (Miniflare) against the Contacts API
# simulator, with real local KV, and the operator console in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export WRANGLER_SEND_METRICS=false NO_COLOR=1

step() { printf '\n==> %s\n' "$*"; }

step "setup (installs only what is missing)"
bash scripts/setup.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (native)"
cargo clippy --all-targets -- -D warnings

step "cargo clippy (wasm32)"
cargo clippy --all-targets --target wasm32-unknown-unknown -- -D warnings

step "cargo test (the core, natively)"
cargo test

step "release Wasm build and upload size (wrangler deploy --dry-run runs scripts/build.sh)"
dry_run=$(npx wrangler deploy --dry-run --outdir dist 2>&1) || { echo "$dry_run"; exit 1; }
grep 'Total Upload' <<<"$dry_run"

step "end-to-end tests (node --test: Miniflare + simulator, and the console in headless Chromium)"
node --test --test-concurrency=1 tests/
