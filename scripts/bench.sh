#!/usr/bin/env bash
# The benchmarks, run by `deno task bench` (full: writes bench/RESULTS.md,
# bench/ratios.svg and docs/performance.md's generated block), `deno task
# bench:smoke` (tiny sizes, prints only; run by scripts/test.sh), `deno
# task bench:load` (the load section with 1,024 streams: bench/LOAD.md) and
# `deno task bench:features` (the features against their peers:
# bench/FEATURES.md).
# Finds Bun with scripts/_find_bun.sh (installing it into .tools/ from the
# npm registry if needed) and works in a temporary directory that it
# removes afterwards; the large test files live there.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/_find_bun.sh
source scripts/_find_bun.sh

bun=$(find_bun) || {
  echo "Cannot install bun@$BUN_VERSION from the npm registry" >&2
  exit 1
}
for tool in curl cp cat; do
  command -v "$tool" >/dev/null || {
    echo "Cannot benchmark: $tool is not installed" >&2
    exit 1
  }
done
deno=$(readlink -f "$(command -v deno)")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# The runner reads the repository and /proc (servers' peak RSS), writes only
# the results (not in smoke mode) and the temporary directory, and starts
# deno, bun, curl, cp and taskset. The servers and clients it starts get their own,
# narrower permissions (bench/run.ts).
deno run \
  --allow-read \
  --allow-write="$tmp,bench/RESULTS.md,bench/LOAD.md,bench/FEATURES.md,bench/ratios.svg,docs/performance.md" \
  --allow-run="$deno,$bun,curl,cp,cat,taskset" \
  --allow-env \
  --allow-sys=osRelease \
  bench/run.ts --bun "$bun" --tmp "$tmp" "$@"
