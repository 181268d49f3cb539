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

skip() {
  echo "browser suite skipped: $1, install with: apt-get install -y chromium"
  if [ "${CI:-}" = "true" ]; then
    echo "browser suite: a skip fails under CI" >&2
    exit 1
  fi
  exit 0
}

chromium=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium with apt-get"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
      skip "apt-get install chromium failed"
    fi
  fi
fi
[ -x "$chromium" ] || skip "no Chromium at $chromium"

# -A: playwright-core launches the browser, talks to it over a pipe and
# writes its profile and artifacts to temporary directories.
CHROMIUM="$chromium" exec deno run -A tests/browser/suite.ts "$@"
