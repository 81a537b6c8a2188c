#!/usr/bin/env bash
# Fuzzes the core with cargo-fuzz (libFuzzer, AddressSanitizer): the signature check, the event
# parser and the mapper (fuzz/fuzz_targets/), each for SECONDS (default 60), and prints each
# target's executions, corpus and crashes. Runs on the stable toolchain: RUSTC_BOOTSTRAP=1 lets it
# take the -Z flags cargo-fuzz passes. Installs cargo-fuzz if it is missing. Exits 1 if a target
# crashed; the input that crashed it and the run's log are kept in fuzz/artifacts/TARGET/.
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export RUSTC_BOOTSTRAP=1

CARGO_FUZZ_VERSION=0.13.2
seconds=${1:-60}
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || { echo "usage: bash scripts/fuzz.sh [SECONDS] [TARGET...]"; exit 2; }
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(signature event mapping)

say() { printf 'fuzz: %s\n' "$*"; }

# The fuzz crate compiles ../src/lib.rs itself, so its dependency lines must be the worker's.
core_dependencies() { sed -n '/^\[dependencies\]$/,/^\[/p' "$1" | grep -E '^[a-z_-]+ = '; }
if ! diff <(core_dependencies Cargo.toml) <(core_dependencies fuzz/Cargo.toml) >/dev/null; then
  say "fuzz/Cargo.toml's [dependencies] differ from Cargo.toml's; copy them over:"
  diff <(core_dependencies Cargo.toml) <(core_dependencies fuzz/Cargo.toml) || true
  exit 1
fi

if [ "$(cargo fuzz --version 2>/dev/null | awk '{print $NF}')" != "$CARGO_FUZZ_VERSION" ]; then
  say "installing cargo-fuzz $CARGO_FUZZ_VERSION (about 2 minutes, once)"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

say "building ${targets[*]}"
for target in "${targets[@]}"; do
  cargo fuzz build --fuzz-dir fuzz "$target" 2>&1 | tail -1
done

stat() { awk -v key="stat::$1:" '$1 == key { print $2 }' "$2"; }
crashed=0
summary=()
for target in "${targets[@]}"; do
  corpus=fuzz/corpus/$target artifacts=fuzz/artifacts/$target
  mkdir -p "$corpus" "$artifacts"
  inputs=("$corpus")
  [ -d "fuzz/seeds/$target" ] && inputs+=("fuzz/seeds/$target")
  options=(-max_total_time="$seconds" -print_final_stats=1)
  [ "$target" = signature ] || options+=(-dict=fuzz/json.dict)
  log=$artifacts/last-run.log
  before=$(find "$artifacts" -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' | wc -l)
  say "running $target for $seconds s"
  status=0
  cargo fuzz run --fuzz-dir fuzz "$target" "${inputs[@]}" -- "${options[@]}" >"$log" 2>&1 || status=$?
  after=$(find "$artifacts" -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' | wc -l)
  found=$((after - before))
  if [ "$status" -ne 0 ] || [ "$found" -gt 0 ]; then
    crashed=1
    say "$target failed (exit $status); the end of its log:"
    tail -30 "$log"
  fi
  summary+=("$(printf '%-10s %12s executions  %8s/s  corpus %6s  crashes %s' "$target" \
    "$(stat number_of_executed_units "$log")" "$(stat average_exec_per_sec "$log")" \
    "$(find "$corpus" -type f | wc -l)" "$found")")
done

say "results ($seconds s per target, $(nproc) CPUs, $(rustc --version))"
printf '  %s\n' "${summary[@]}"
exit "$crashed"
