#!/usr/bin/env bash
# The whole test suite, run by `deno task test` (and so by `.ci/run`).
# Steps, in order: format, lint, type-check, layering check, doc lint, deno
# test, bun test (both include the Worker in workerd), the small stress run
# under each runtime, the Node client script, Worker bundle size, the
# benchmarks' smoke run, publish dry run, the README's runtime matrix. Any
# failing step fails the task; the output ends with the test runners' own
# summaries.
set -uo pipefail
cd "$(dirname "$0")/.."

# The runners' logs and results, kept for the README's runtime matrix
# (scripts/runtime_matrix.ts).
logs=.tmp/runtimes
rm -rf "$logs"
mkdir -p "$logs"
failed=()

step() {
  local name=$1
  shift
  printf '\n==> %s: %s\n' "$name" "$*"
  if ! "$@"; then
    failed+=("$name")
  fi
}

# shellcheck source=scripts/_find_bun.sh
source scripts/_find_bun.sh

entry_points=(mod.ts lib/streams/mod.ts lib/http/mod.ts lib/runtime/fs.ts lib/runtime/serve.ts lib/rpc/mod.ts lib/runtime/grpc_node.ts lib/runtime/websocket.ts lib/runtime/workers.ts)

mkdir -p .tmp
step fmt deno fmt --check
step lint deno lint
step check deno check mod.ts lib/ examples/ tests/ bench/
step layers deno task check:layers
step doc-examples deno check --doc mod.ts lib/
step doc deno doc --lint "${entry_points[@]}"

printf '\n==> deno test\n'
NO_COLOR=1 deno task test:deno 2>&1 | tee "$logs/deno.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed+=("deno test")

printf '\n==> bun test\n'
if bun=$(find_bun); then
  "$bun" --version | tee "$logs/bun.version"
  (cd tests && "$bun" test --timeout 120000 .) 2>&1 | tee "$logs/bun.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || failed+=("bun test")
else
  echo "Cannot install bun@$BUN_VERSION from the npm registry" >&2
  failed+=("bun install")
fi

# Load, small: 50 concurrent streams of each kind against a server in its
# own process, every result checked, no leaks (`deno task stress` is the
# full 1,000).
step stress-deno deno run --allow-net=127.0.0.1 --allow-read --allow-write=./.tmp --allow-env --allow-run scripts/stress.ts --small
if [ -n "${bun:-}" ]; then
  step stress-bun "$bun" scripts/stress.ts --small
fi

# Node 20 as the client of the Worker under Deno.serve, Bun.serve and
# workerd (tests/node/clients.ts, bundled for Node).
printf '\n==> node client\n'
BUN="${bun:-}" deno task test:node 2>&1 | tee "$logs/node.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed+=("node client")

# The browser suite in headless Chromium (installed with apt-get when
# missing; a skip fails under CI).
step browser bash tests/browser/run.sh

step bundle-size deno task build:worker

# The benchmarks with tiny sizes, so that they cannot rot (`deno task bench`
# is the full run behind the README's performance section).
step bench-smoke deno task bench:smoke
step bench-multipart-smoke deno run --allow-read --allow-env bench/multipart_bench.ts --smoke

step publish deno publish --dry-run --allow-dirty

# The runtime matrix, from this run's logs: printed and written to
# .tmp/runtimes/matrix.md, never to a tracked file (`deno task matrix:docs`
# copies it into docs/runtime-matrix.md).
step matrix deno task matrix

printf '\n==> summary\n'
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED steps: ${failed[*]}"
else
  echo "all steps passed"
fi
# The runners' own closing lines, then one total. Deno counts each node:test
# `it` as a step; Bun counts it as a test.
deno_line=$(grep -E '^(ok|FAILED) \|' "$logs/deno.log" | tail -n 1)
echo "deno test: ${deno_line:-(no summary: deno test did not finish)}"
bun_pass=$(grep -E '^ *[0-9]+ pass$' "$logs/bun.log" 2>/dev/null | tail -n 1 | tr -dc 0-9)
bun_fail=$(grep -E '^ *[0-9]+ fail$' "$logs/bun.log" 2>/dev/null | tail -n 1 | tr -dc 0-9)
echo "bun test: ${bun_pass:-?} pass, ${bun_fail:-?} fail"
node_pass=$(grep -E '^[^ ]+ pass [0-9]+$' "$logs/node.log" 2>/dev/null | tail -n 1 | tr -dc 0-9)
node_fail=$(grep -E '^[^ ]+ fail [0-9]+$' "$logs/node.log" 2>/dev/null | tail -n 1 | tr -dc 0-9)
echo "node client: ${node_pass:-?} pass, ${node_fail:-?} fail"
count() { # count <passed|failed> from deno's line: steps when present, else tests
  local n
  n=$(echo "$deno_line" | grep -oE "[0-9]+ $1 \([0-9]+ steps\)" | grep -oE '\([0-9]+' | tr -dc 0-9)
  [ -n "$n" ] || n=$(echo "$deno_line" | grep -oE "[0-9]+ $1" | tr -dc 0-9)
  echo "${n:-0}"
}
passed=$(($(count passed) + ${bun_pass:-0} + ${node_pass:-0}))
failures=$(($(count failed) + ${bun_fail:-0} + ${node_fail:-0}))
# A failed step that is not a test run (fmt, lint, ...) counts as one failure.
for name in "${failed[@]}"; do
  case "$name" in "deno test" | "bun test" | "node client") ;; *) failures=$((failures + 1)) ;; esac
done
[ -n "$deno_line" ] || failures=$((failures + 1))
[ -n "$bun_pass" ] || failures=$((failures + 1))
[ -n "$node_pass" ] || failures=$((failures + 1))
echo "total: $passed passed, $failures failed"
[ ${#failed[@]} -eq 0 ] && [ "$failures" -eq 0 ]
