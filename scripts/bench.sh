#!/usr/bin/env bash
# The benchmarks, run by `deno task bench` (full: writes bench/RESULTS.md,
# bench/ratios.svg and the README's bench section) and `deno task
# bench:smoke` (tiny sizes, prints only; run by scripts/test.sh).
# Finds Bun 1.4.5 like scripts/test.sh (installing it into .tools/ from the
# npm registry if needed) and works in a temporary directory that it
# removes afterwards; the large test files live there.
set -euo pipefail
cd "$(dirname "$0")/.."

BUN_VERSION=1.4.5

# Bun from the npm registry, pinned; installed into .tools/ on first use.
find_bun() {
  if command -v bun >/dev/null 2>&1 && [ "$(bun --version)" = "$BUN_VERSION" ]; then
    command -v bun
    return
  fi
  local local_bun=.tools/node_modules/bun/bin/bun.exe
  if [ ! -x "$local_bun" ] || [ "$("$local_bun" --version)" != "$BUN_VERSION" ]; then
    mkdir -p .tools
    [ -f .tools/package.json ] || echo '{"private":true}' >.tools/package.json
    npm install --silent --no-audit --no-fund --prefix .tools "bun@$BUN_VERSION" >&2 || return 1
  fi
  echo "$PWD/$local_bun"
}

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
# deno, bun, curl and cp. The servers and clients it starts get their own,
# narrower permissions (bench/run.ts).
deno run \
  --allow-read \
  --allow-write="$tmp,bench/RESULTS.md,bench/ratios.svg,README.md" \
  --allow-run="$deno,$bun,curl,cp,cat" \
  --allow-env \
  --allow-sys=osRelease \
  bench/run.ts --bun "$bun" --tmp "$tmp" "$@"
