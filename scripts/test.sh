#!/usr/bin/env bash
# The whole test suite, run by `deno task test` (and so by `.ci/run`).
# Steps, in order: format, lint, type-check, layering check, the JSDoc
# examples (run by `deno test --doc`; those marked `ts ignore` type-checked
# by tests/doc_examples.ts), doc lint, the tools the tests start (Bun,
# workerd, miniflare), deno test with bun test beside it (both
# include the Worker in workerd), the small stress run under each runtime, the
# Node client script, the browser suite in headless Chromium, Worker bundle size, the benchmarks' smoke run, publish
# dry run, the README's runtime matrix, and a check that the run left the
# clone as it found it. Any failing step fails the task, and so does a test
# runner that ran no test; the output ends with the test runners' own
# summaries, one total, and how long each step took.
set -uo pipefail
cd "$(dirname "$0")/.."

# The runners' logs and results, kept for the README's runtime matrix
# (scripts/runtime_matrix.ts).
logs=.tmp/runtimes
rm -rf "$logs"
mkdir -p "$logs"
failed=()
timings=()
# The clone's state before the run: the run must not change it.
clone_before=$(git status --porcelain 2>/dev/null || true)

# timed <name> <seconds at start>: records how long a step took.
timed() {
  timings+=("$1: $((SECONDS - $2)) s")
}

step() {
  local name=$1 start=$SECONDS
  shift
  printf '\n==> %s: %s\n' "$name" "$*"
  if ! "$@"; then
    failed+=("$name")
  fi
  timed "$name" "$start"
}

# The test runners in the background (each under timeout, which leads a
# process group of its own: a Ctrl-C at the terminal reaches none of them).
# The script waits for them with `wait`, which a signal interrupts, so an
# interrupted task stops them all at once, their children too.
runners=()
stop_runners() {
  local pid
  for pid in "${runners[@]}"; do
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  done
}
trap 'stop_runners; exit 130' INT TERM
# forget <pid>...: runners that ended (their PIDs may be reused).
forget() {
  local pid ended kept=()
  for pid in "${runners[@]}"; do
    for ended in "$@"; do [ "$pid" = "$ended" ] && continue 2; done
    kept+=("$pid")
  done
  runners=("${kept[@]}")
}

# run_logged <log> <command>...: runs the command in the background, its
# output into the log and shown as it comes; returns its exit status once
# the log is whole and shown.
run_logged() {
  local log=$1 pid shown status
  shift
  : >"$log"
  "$@" >>"$log" 2>&1 &
  pid=$!
  tail -n +1 --pid="$pid" -f "$log" &
  shown=$!
  runners+=("$pid" "$shown")
  wait "$pid"
  status=$?
  wait "$shown"
  forget "$pid" "$shown"
  return "$status"
}

# shellcheck source=scripts/_find_bun.sh
source scripts/_find_bun.sh
# find_chromium, for the browser suite.
# shellcheck source=scripts/_find_chromium.sh
source scripts/_find_chromium.sh


mkdir -p .tmp
step fmt deno fmt --check
step lint deno lint
step check deno check mod.ts lib/ examples/ tests/ bench/
# The README's examples, as a user copies them (its imports resolve to this
# package through deno.json's name and exports).
step readme deno check --doc-only README.md
step layers deno task check:layers

# Every JSDoc example runs (this also type-checks them), except those marked
# `ts ignore` (they need a network server, a file or another runtime), which
# tests/doc_examples.ts type-checks.
start=$SECONDS
printf '\n==> doc examples: deno task test:doc\n'
NO_COLOR=1 deno task test:doc 2>&1 | tee "$logs/doc.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed+=("doc examples")
timed "doc examples" "$start"

step doc deno run --allow-read --allow-run --allow-env scripts/doc_lint.ts

# deno_tests <name> <log> <file>...: runs `deno test` on the files. Deno
# 2.9.6's node:http2 (nghttp2) can abort the whole process as a session
# closes (docs/known-runtime-issues.md (e)), and several test files run
# node:http2 servers and clients in the runner's process. A run that died
# before its summary line (that abort: nghttp2's assertion, or a
# segmentation fault) runs once more, says so, and keeps the first run's log
# beside the second; the second run takes only the files the first did not
# finish (it ran them in turn: every file whose run began before the one it
# died in had ended), so that an abort late in the run costs little more
# time. A run whose tests failed (it prints FAILED and its failures) never
# runs again, nor one whose finished files hold a failure. A run is bounded
# too (DENO_TEST_LIMIT seconds, three times its usual length beside a second
# suite): a test that hangs fails the run, with no second attempt, instead
# of holding it forever.
DENO_TEST_LIMIT=900
retried=()
deno_tests() {
  local name=$1 log=$2 attempt status
  shift 2
  local files=("$@") finished=() rest=() file
  for attempt in 1 2; do
    run_logged "$log" env NO_COLOR=1 timeout --kill-after=10 "$DENO_TEST_LIMIT" deno task test:deno:files "${files[@]}"
    status=$?
    [ "$status" -eq 0 ] && return
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
      echo "$name did not finish within $DENO_TEST_LIMIT s (a test hung): stopped" | tee -a "$log"
      failed+=("$name (hung)")
      return
    fi
    if [ "$attempt" -eq 2 ] && ! grep -qE '^(ok|FAILED) \|' "$log"; then
      echo "$name died before its summary again: not run a third time" | tee -a "$log"
    fi
    if [ "$attempt" -eq 1 ] && ! grep -qE '^(ok|FAILED) \|' "$log"; then
      mapfile -t finished < <(grep -aoE '^running [0-9]+ tests? from \./[^ ]+' "$log" | sed 's#.* from \./##' | head -n -1)
      if finished_part "$log" | grep -qaE ' \.\.\. FAILED'; then
        echo "$name died before its summary (Deno's node:http2, known runtime issue (e)), after a failure: not run again" | tee -a "$log"
        failed+=("$name")
        return
      fi
      cp "$log" "$log.died"
      rest=()
      for file in "${files[@]}"; do
        [[ " ${finished[*]} " == *" $file "* ]] || rest+=("$file")
      done
      echo "$name died before its summary (Deno's node:http2, known runtime issue (e)); running the ${#rest[@]} files it had not finished once more (first run's log: $log.died)"
      retried+=("$name (${#rest[@]} of ${#files[@]} files)")
      files=("${rest[@]}")
      continue
    fi
    failed+=("$name")
    return
  done
}

# finished_part <log>: a died run's log up to the file it died in (the
# output of the files it finished).
finished_part() {
  local last
  last=$(grep -anE '^running [0-9]+ tests? from ' "$1" | tail -n 1 | cut -d: -f1)
  head -n "$((${last:-1} - 1))" "$1"
}

# steps_of <log>: the steps a died run's finished files passed, counted as
# Deno's summary counts them (each node:test `it`, indented under its
# describe).
steps_of() {
  [ -f "$1" ] || { echo 0; return; }
  finished_part "$1" | grep -caE '^ +.* \.\.\. ok( |$)' || true
}

# The tools the tests start, installed before the runners run side by side
# (two npm installs into .tools/ at once could break each other).
start=$SECONDS
printf '\n==> tools\n'
if bun=$(find_bun); then
  "$bun" --version | tee "$logs/bun.version"
else
  echo "Cannot install bun@$BUN_VERSION from the npm registry" >&2
  bun=
  failed+=("bun install")
fi
deno run --allow-read --allow-run --allow-env tests/_install_tools.ts || failed+=("tools")
timed tools "$start"

# `bun test` runs beside `deno test`: most of both runs is waiting on
# sockets, child processes and timers, not CPU (a whole second suite beside
# this one made deno test 12-18 % slower and bun test 2-8 %). Side by side
# on a quiet 2-core machine, deno test took 385 s (363-382 s alone) and bun
# test 297 s (259-276 s alone): the task 647 s, not 882-911 s. Bun's output
# goes to its log, printed whole when it ends. Its run is bounded as deno
# test's is. Where the tools could not be installed first, it runs after
# deno test instead (each runner would install them, and not at once).
BUN_TEST_LIMIT=900
# bun_tests: run in the background (a subshell of its own, which it ends
# in exec), so that its PID is timeout's.
bun_tests() {
  cd tests && exec timeout --kill-after=10 "$BUN_TEST_LIMIT" "$bun" test --timeout 120000 .
}
# start_bun_tests: bun_tests in the background, its output to its log.
start_bun_tests() {
  bun_tests >"$logs/bun.log" 2>&1 &
  bun_pid=$!
  runners+=("$bun_pid")
}
bun_pid=
if [ -n "$bun" ] && [[ " ${failed[*]} " != *" tools "* ]]; then
  start_bun_tests
fi

start=$SECONDS
printf '\n==> deno test%s\n' "${bun_pid:+ (bun test running beside it)}"
rm -f "$logs/deno.log.died" "$logs/deno-interop.log.died"
mapfile -t deno_files < <(ls tests/*.test.ts | grep -v '^tests/rpc_interop\.test\.ts$')
deno_tests "deno test" "$logs/deno.log" "${deno_files[@]}"
# tests/rpc_interop.test.ts runs node:http2 clients and servers of several
# libraries, the most exposed to that abort: a process of its own.
deno_tests "deno test (rpc interop)" "$logs/deno-interop.log" tests/rpc_interop.test.ts
timed "deno test" "$start"

if [ -n "$bun" ]; then
  if [ -n "$bun_pid" ]; then
    printf '\n==> bun test (ran beside deno test; its output)\n'
    wait "$bun_pid"
    bun_status=$?
  else
    printf '\n==> bun test\n'
    start_bun_tests
    wait "$bun_pid"
    bun_status=$?
  fi
  forget "$bun_pid"
  cat "$logs/bun.log"
  if [ "$bun_status" -eq 124 ] || [ "$bun_status" -eq 137 ]; then
    echo "bun test did not finish within $BUN_TEST_LIMIT s (a test hung): stopped" | tee -a "$logs/bun.log"
    failed+=("bun test (hung)")
  elif [ "$bun_status" -ne 0 ]; then
    failed+=("bun test")
  fi
  # Bun's own time ("Ran 2068 tests across 121 files. [297.21s]"), not the
  # wait for it.
  bun_seconds=$(grep -aoE '^Ran [0-9]+ tests? across [0-9]+ files?\. \[[0-9.]+s\]' "$logs/bun.log" | grep -oE '[0-9.]+s\]' | tr -d 's]' | cut -d. -f1)
  timings+=("bun test: ${bun_seconds:-?} s")
fi

# Load, small: 50 concurrent streams of each kind against a server in its
# own process, every result checked, no leaks (`deno task stress` is the
# full 1,000).
step stress-deno deno run --allow-net=127.0.0.1 --allow-read --allow-write=./.tmp --allow-env --allow-run scripts/stress.ts --small
if [ -n "${bun:-}" ]; then
  step stress-bun "$bun" scripts/stress.ts --small
fi

# The resumable-upload fault run at the size the issue set: 100 connection
# cuts at random offsets during a 256 MiB upload, on the file store and on
# the Workers store in workerd (the deno and bun steps run 20 cuts over
# 32 MiB); every upload ends byte-identical, its SHA-256 checked.
step resumable-faults env SLUICE_RESUMABLE_FULL=1 deno test --allow-net=127.0.0.1 --allow-read --allow-write=./.tmp --allow-env --allow-run tests/resumable_client.test.ts tests/resumable_workers.test.ts

# Node 20 as the client of the Worker under Deno.serve, Bun.serve and
# workerd (tests/node/clients.ts, bundled for Node).
start=$SECONDS
printf '\n==> node client\n'
BUN="${bun:-}" deno task test:node 2>&1 | tee "$logs/node.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed+=("node client")
timed "node client" "$start"

# The browser suite in headless Chromium (installed with apt-get when
# missing; a skip fails under CI).
start=$SECONDS
printf '\n==> browser (chromium)\n'
bash tests/browser/run.sh 2>&1 | tee "$logs/browser.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed+=("browser")
timed "browser" "$start"

step bundle-size deno task build:worker

# The benchmarks with tiny sizes, so that they cannot rot (`deno task bench`
# is the full run behind the README's performance section).
step bench-smoke deno task bench:smoke
step bench-multipart-smoke deno run --allow-read --allow-env bench/multipart_bench.ts --smoke
# What one small upload costs in process (docs/performance.md), a few
# requests per case.
step bench-upload-request-smoke env BENCH_SMOKE=1 deno bench --allow-env=BENCH_SMOKE bench/upload_request_bench.ts
# Lockstep over Deno's fetch on h2c, measured by hand (docs/performance.md):
# 20 round trips each, so that its contenders run.
step bench-h2c-fetch-smoke deno run --allow-run --allow-read bench/h2_lockstep_ab.ts bun . . 1 20 deno floor-h2f,floor-h2f-js,floor-h2f-sums,ours-connect-h2f,ours-grpc-web-h2f 20

step publish deno publish --dry-run --allow-dirty

# The runtime matrix, from this run's logs: printed and written to
# .tmp/runtimes/matrix.md, never to a tracked file (`deno task matrix:docs`
# copies it into docs/runtime-matrix.md).
step matrix deno task matrix

# The run leaves the clone as it found it: no tracked file changed, no
# untracked file left outside the ignored folders (.tmp/, .tools/, ...).
clean_clone() {
  local after
  after=$(git status --porcelain 2>/dev/null) || return 0
  local changed
  changed=$(diff <(echo "$clone_before") <(echo "$after") | grep '^>' || true)
  if [ -n "$changed" ]; then
    echo "The test run changed the clone (git status --porcelain):"
    echo "$changed"
    return 1
  fi
}
step clean-clone clean_clone

# failed_tests: the tests that failed, a line or two each, with where they
# failed (the logs above hold the whole story; a CI page may show only this
# summary).
failed_tests() {
  local log
  for log in "$logs/doc.log" "$logs/deno.log" "$logs/deno-interop.log"; do
    [ -f "$log" ] || continue
    # Deno's ERRORS section: "<test> => <where>", its first "error:" line and
    # the first stack line in this project's own files.
    # A name line ends with where the test is ("=> ./tests/x.ts:3:1",
    # "=> ext:deno_node/...") or says "(uncaught error)"; a source line
    # quoted in a message may hold " => " too, never followed by those.
    awk -v runner="$(basename "$log" .log)" '
      /^ ERRORS $/ { on = 1; next }
      /^ FAILURES $/ { on = 0 }
      !on { next }
      / => (\.\/|ext:|file:)[^ ]*:[0-9]+:[0-9]+$/ || / \(uncaught error\)$/ { name = $0; shown = 0; stack = 0; next }
      /^error: / && name != "" && !shown { print "  " runner ": " name; print "    " substr($0, 1, 300); shown = 1; next }
      /^ +at .*\/(tests|lib|examples)\// && shown && !stack { sub(/^ +/, ""); print "    " $0; stack = 1 }
    ' "$log" | head -n 30
  done
  grep -a -E '^\(fail\) ' "$logs/bun.log" 2>/dev/null | head -n 10 | sed 's/^/  bun: /'
  grep -a -E '^ *✖ ' "$logs/node.log" 2>/dev/null | head -n 10 | sed 's/^ */  node: /'
  grep -a -A1 -E '^FAIL - ' "$logs/browser.log" 2>/dev/null | grep -v '^--$' | head -n 10 | sed 's/^/  browser: /'
}

printf '\n==> summary\n'
printf '%s\n' "${timings[@]}" | paste -sd ',' | sed 's/,/, /g; s/^/time per step: /'
echo "whole task: $SECONDS s"
if [ ${#retried[@]} -gt 0 ]; then
  echo "ran once more after a runtime abort: ${retried[*]}"
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED steps: ${failed[*]}"
  failed_tests
else
  echo "all steps passed"
fi
# The runners' own closing lines, then one total. Deno counts each node:test
# `it` as a step; Bun counts it as a test.
doc_line=$(grep -E '^(ok|FAILED) \|' "$logs/doc.log" | tail -n 1)
echo "doc examples: ${doc_line:-(no summary: deno test --doc did not finish)}"
deno_line=$(grep -E '^(ok|FAILED) \|' "$logs/deno.log" | tail -n 1)
echo "deno test: ${deno_line:-(no summary: deno test did not finish)}"
interop_line=$(grep -E '^(ok|FAILED) \|' "$logs/deno-interop.log" | tail -n 1)
echo "deno test (rpc interop): ${interop_line:-(no summary: it did not finish)}"
bun_pass=$(grep -E '^ *[0-9]+ pass$' "$logs/bun.log" 2>/dev/null | tail -n 1 | tr -dc 0-9)
bun_fail=$(grep -E '^ *[0-9]+ fail$' "$logs/bun.log" 2>/dev/null | tail -n 1 | tr -dc 0-9)
echo "bun test: ${bun_pass:-?} pass, ${bun_fail:-?} fail"
node_pass=$(grep -E '^[^ ]+ pass [0-9]+$' "$logs/node.log" 2>/dev/null | tail -n 1 | tr -dc 0-9)
node_fail=$(grep -E '^[^ ]+ fail [0-9]+$' "$logs/node.log" 2>/dev/null | tail -n 1 | tr -dc 0-9)
echo "node client: ${node_pass:-?} pass, ${node_fail:-?} fail"
browser_line=$(grep -E '^browser \(chromium\): [0-9]+ passed, [0-9]+ failed$' "$logs/browser.log" 2>/dev/null | tail -n 1)
echo "${browser_line:-browser (chromium): did not run ($(grep -m1 'browser suite skipped' "$logs/browser.log" 2>/dev/null || echo 'no summary'))}"
browser_pass=$(echo "$browser_line" | grep -oE '[0-9]+ passed' | tr -dc 0-9)
browser_fail=$(echo "$browser_line" | grep -oE '[0-9]+ failed' | tr -dc 0-9)
count() { # count <line> <passed|failed> from a deno line: steps when present, else tests
  local n
  n=$(echo "$1" | grep -oE "[0-9]+ $2 \([0-9]+ steps?\)" | grep -oE '\([0-9]+' | tr -dc 0-9)
  [ -n "$n" ] || n=$(echo "$1" | grep -oE "[0-9]+ $2" | tr -dc 0-9)
  echo "${n:-0}"
}
doc_pass=$(count "$doc_line" passed)
# A run that died and ran its unfinished files again: its finished files'
# steps from the first run's log.
deno_died=$(steps_of "$logs/deno.log.died")
interop_died=$(steps_of "$logs/deno-interop.log.died")
if [ "$deno_died" -gt 0 ] || [ "$interop_died" -gt 0 ]; then
  echo "deno test, files finished before the abort: $deno_died steps passed (rpc interop: $interop_died)"
fi
# A run that died with no run after it (after a failure, or a second time):
# the steps of the files it finished, and its failures there (at least one:
# it died).
unfinished_fail=0
deno_unfinished=0
interop_unfinished=0
for log in "$logs/deno.log" "$logs/deno-interop.log"; do
  [ -f "$log" ] || continue
  grep -qE '^(ok|FAILED) \|' "$log" && continue
  p=$(steps_of "$log")
  f=$(finished_part "$log" | grep -caE '^ +.* \.\.\. FAILED' || true)
  echo "$(basename "$log" .log): died before its summary; in the files it finished, $p steps passed and $f failed"
  if [ "$log" = "$logs/deno.log" ]; then deno_unfinished=$p; else interop_unfinished=$p; fi
  unfinished_fail=$((unfinished_fail + (f > 0 ? f : 1)))
done
deno_pass=$(($(count "$deno_line" passed) + $(count "$interop_line" passed) + deno_died + interop_died + deno_unfinished + interop_unfinished))
passed=$((doc_pass + deno_pass + ${bun_pass:-0} + ${node_pass:-0} + ${browser_pass:-0}))
failures=$(($(count "$doc_line" failed) + $(count "$deno_line" failed) + $(count "$interop_line" failed) + unfinished_fail + ${bun_fail:-0} + ${node_fail:-0} + ${browser_fail:-0}))
# A failed step that is not a test run (fmt, lint, ...) counts as one failure.
for name in "${failed[@]}"; do
  case "$name" in "doc examples" | "deno test" | "deno test (rpc interop)" | "bun test" | "node client" | "browser") ;; *) failures=$((failures + 1)) ;; esac
done
# A runner that gave no summary or ran no test is a failure too (the
# browser suite may be skipped outside CI, loudly; under CI a skip fails).
if [[ " ${failed[*]} " == *" browser "* ]] && [ -z "$browser_line" ]; then
  failures=$((failures + 1))
fi
for runner in "doc examples:$doc_pass" "deno test:$(($(count "$deno_line" passed) + deno_died + deno_unfinished))" "deno test (rpc interop):$(($(count "$interop_line" passed) + interop_died + interop_unfinished))" "bun test:${bun_pass:-0}" "node client:${node_pass:-0}"; do
  if [ "${runner##*:}" -eq 0 ]; then
    echo "FAILED: ${runner%:*} ran no test"
    failures=$((failures + 1))
  fi
done
echo "total: $passed passed, $failures failed"
[ ${#failed[@]} -eq 0 ] && [ "$failures" -eq 0 ]
