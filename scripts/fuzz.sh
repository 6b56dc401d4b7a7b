#!/usr/bin/env bash
# Runs the fuzz targets of dnsnat-core (crates/dnsnat-core/fuzz/fuzz_targets).
#
#   scripts/fuzz.sh [--seconds S | --runs N] [target ...]
#
# --seconds S  each target for S seconds (default 60)
# --runs N     each target for N executions (the long run: docs/security.md
#              records the counts of `--runs 10000000`)
#
# `npm test` runs a smoke of every target (scripts/test.sh). Works on the
# stable toolchain: cargo-fuzz needs nightly only for its compiler flags,
# which RUSTC_BOOTSTRAP=1 unlocks. `-s none` builds without a sanitizer (all
# our code is safe Rust; libFuzzer still gets coverage feedback); set
# FUZZ_SANITIZER=address to try ASan. Needs `cargo install cargo-fuzz` once.
# The corpus (crates/dnsnat-core/fuzz/corpus, not committed) is seeded with
# well-formed inputs by the core's `write_fuzz_seeds*` tests; a crash leaves
# its input in crates/dnsnat-core/fuzz/artifacts/<target>.
set -euo pipefail
cd "$(dirname "$0")/.."

limit=(-max_total_time=60)
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) limit=(-max_total_time="$2"); shift 2 ;;
    --runs) limit=(-runs="$2"); shift 2 ;;
    *) break ;;
  esac
done
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(packet_parse nat_translate dns_query control_parse pattern_match state_file gate_table)
fi
sanitizer="${FUZZ_SANITIZER:-none}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
  exit 1
fi

corpus_root="crates/dnsnat-core/fuzz/corpus"
DNSNAT_FUZZ_SEEDS="$PWD/$corpus_root" cargo test -q -p dnsnat-core --lib write_fuzz_seeds -- --ignored >/dev/null

cd crates/dnsnat-core
# One build of every target before any runs, so a run's time is fuzzing.
RUSTC_BOOTSTRAP=1 cargo fuzz build -s "$sanitizer" >/dev/null
for target in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$target"
  log="$(mktemp)"
  status=0
  RUSTC_BOOTSTRAP=1 cargo fuzz run -s "$sanitizer" "$target" "fuzz/corpus/$target" -- \
    "${limit[@]}" -print_final_stats=1 >"$log" 2>&1 || status=$?
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')
  secs=$(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$log" | grep -oE 'in [0-9]+' | grep -oE '[0-9]+' || echo '?')
  rss=$(grep -oE 'stat::peak_rss_mb: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')
  echo "fuzz $target: $runs executions in ${secs} s, peak RSS ${rss} MB, corpus $(ls "fuzz/corpus/$target" | wc -l) inputs"
  if [ "$status" -ne 0 ]; then
    grep -E 'panicked|SUMMARY|crash-|ERROR' "$log" | head -20 >&2 || true
    echo "fuzz target $target failed (exit $status); its input is in crates/dnsnat-core/fuzz/artifacts/$target" >&2
    rm -f "$log"
    exit "$status"
  fi
  rm -f "$log"
done
