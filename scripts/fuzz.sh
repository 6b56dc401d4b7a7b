#!/usr/bin/env bash
# Runs each fuzz target of dnsnat-core for N seconds (default 60).
#
#   scripts/fuzz.sh [seconds] [target ...]
#
# Works on the stable toolchain: cargo-fuzz needs nightly only for its
# compiler flags, which RUSTC_BOOTSTRAP=1 unlocks. `-s none` builds without a
# sanitizer (all our code is safe Rust; libFuzzer still gets coverage
# feedback); set FUZZ_SANITIZER=address to try ASan. Needs `cargo install
# cargo-fuzz` once; the corpus is seeded with well-formed packets and NAT
# scripts written by the core's `write_fuzz_seeds` test.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(packet_parse nat_translate dns_query)
fi
sanitizer="${FUZZ_SANITIZER:-none}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
  exit 1
fi

corpus_root="crates/dnsnat-core/fuzz/corpus"
DNSNAT_FUZZ_SEEDS="$PWD/$corpus_root" cargo test -q -p dnsnat-core --lib write_fuzz_seeds -- --ignored >/dev/null

cd crates/dnsnat-core
for target in "${targets[@]}"; do
  echo "=== fuzz $target for ${seconds}s (sanitizer: $sanitizer)"
  mkdir -p "fuzz/corpus/$target"
  log="$(mktemp)"
  status=0
  RUSTC_BOOTSTRAP=1 cargo fuzz run -s "$sanitizer" "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss)|panicked|SUMMARY|crash-' "$log" || true
  rm -f "$log"
  if [ "$status" -ne 0 ]; then
    echo "fuzz target $target failed (exit $status); see crates/dnsnat-core/fuzz/artifacts/$target" >&2
    exit "$status"
  fi
done
