#!/usr/bin/env bash
# `npm test`: every check, in order; the first failing stage fails the command.
set -euo pipefail
cd "$(dirname "$0")/.."

stage() {
  local name=$1; shift
  local start=$SECONDS
  echo "::: $name"
  if "$@"; then
    echo "::: $name ok ($((SECONDS - start)) s)"
  else
    local rc=$?
    echo "::: $name FAILED ($((SECONDS - start)) s)" >&2
    exit "$rc"
  fi
}

stage "cargo fmt" cargo fmt --all --check
stage "cargo clippy" cargo clippy --workspace --all-targets -q -- -D warnings
stage "biome" npx --no-install biome check .
stage "tsc" npx --no-install tsc --noEmit -p tsconfig.json
# No import cycles in ts/ or between the modules of any crate.
stage "import cycles" node scripts/check-imports.mjs
stage "cargo test" cargo test --workspace -q
# Every fuzz target for a few seconds from its seeds (the long run is scripts/fuzz.sh --runs N).
fuzz_smoke() {
  if ! cargo fuzz --version >/dev/null 2>&1; then
    if [ "${CI:-}" = true ]; then
      echo "cargo-fuzz must be installed under CI (cargo install cargo-fuzz)" >&2
      return 1
    fi
    echo "skipping the fuzz smoke: cargo-fuzz is not installed (cargo install cargo-fuzz)"
    return 0
  fi
  bash scripts/fuzz.sh --seconds "${FUZZ_SMOKE_SECONDS:-4}"
}
stage "fuzz smoke" fuzz_smoke
# The CLI tests and the namespace fixtures run the compiled dist/: keep it current.
stage "build ts" npx --no-install tsc -p tsconfig.build.json
stage "vitest" npx --no-install vitest run
stage "package check" bash scripts/package-check.sh
