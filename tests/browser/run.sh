#!/usr/bin/env bash
# The browser suite (tests/browser/suite.ts) in headless Chromium, as
# `deno task test:browser` and the `browser` step of scripts/test.sh run it.
#
# Chromium is Debian's package at /usr/bin/chromium (or $CHROMIUM). When it
# is missing and this runs as root with apt-get, it is installed; otherwise
# the suite is skipped with a loud line. Under CI (CI=true) a skip fails:
# CI never passes without the browser suite.
set -uo pipefail
cd "$(dirname "$0")/../.."

# shellcheck source=scripts/_find_chromium.sh
source scripts/_find_chromium.sh
if ! chromium=$(CHROMIUM_PATH=${CHROMIUM:-${CHROMIUM_PATH:-/usr/bin/chromium}} find_chromium); then
  # find_chromium said why, loudly.
  if [ "${CI:-}" = "true" ]; then
    echo "browser suite: a skip fails under CI" >&2
    exit 1
  fi
  exit 0
fi

# -A: playwright-core launches the browser, talks to it over a pipe and
# writes its profile and artifacts to temporary directories.
CHROMIUM="$chromium" exec deno run -A tests/browser/suite.ts "$@"
