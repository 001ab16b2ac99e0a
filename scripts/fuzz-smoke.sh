#!/usr/bin/env bash
# Fuzz smoke test: runs every cargo-fuzz target of axum-mqtt (axum-mqtt/fuzz/) for a short while.
#
#   scripts/fuzz-smoke.sh                  # 20 s per target
#   FUZZ_SECONDS=600 scripts/fuzz-smoke.sh # a real session
#   FUZZ_TARGETS="topic" scripts/fuzz-smoke.sh
#
# Exits non-zero on the first crash or failed assertion and prints the input that caused it (also
# saved under axum-mqtt/fuzz/artifacts/<target>/; replay with `cargo fuzz run <target> <file>`).
# The corpus grows in axum-mqtt/fuzz/corpus/ (git-ignored) and is reused by later runs.
#
# Needs cargo-fuzz (installed here when missing) and a C++ compiler for libFuzzer. cargo-fuzz
# passes nightly-only flags to rustc; RUSTC_BOOTSTRAP=1 lets a stable toolchain take them. The
# targets are built without a sanitizer: the code under test is safe Rust, so the fuzzer looks for
# panics and broken properties, not memory errors.
set -euo pipefail
cd "$(dirname "$0")/../axum-mqtt"

secs="${FUZZ_SECONDS:-20}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz-smoke: installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi

targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"
echo "fuzz-smoke: building targets: $(echo $targets)"
cargo fuzz build --sanitizer none -O >/dev/null

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for t in $targets; do
  mkdir -p "fuzz/corpus/$t"
  args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
  if [ -f "fuzz/dicts/$t.dict" ]; then
    args+=(-dict="fuzz/dicts/$t.dict")
  fi
  if cargo fuzz run --sanitizer none -O "$t" "fuzz/corpus/$t" -- "${args[@]}" >"$log" 2>&1; then
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
    echo "fuzz-smoke: $t ok, $runs runs in ${secs} s, corpus $(ls "fuzz/corpus/$t" | wc -l) inputs"
  else
    echo "fuzz-smoke: $t FAILED; the end of its output:"
    grep -v -E '^#[0-9]+' "$log" | tail -n 60
    exit 1
  fi
done
