# Chromium for the browser suite, from Debian's packages (playwright-core
# drives it through `executablePath`). Sourced by scripts/test.sh (run from
# the repo root).

# Prints the path of Chromium: /usr/bin/chromium (or $CHROMIUM_PATH) if it is
# there; else, when running as root with apt-get, installs Debian's
# `chromium` package first (at most CHROMIUM_INSTALL_SECONDS, 600 by default;
# apt's output goes to .tmp/chromium-install.log). Otherwise, or if the install fails, prints
# "browser suite skipped: <why>, ..." on standard error and returns 1, so the
# caller can skip the browser suite loudly.
find_chromium() {
  local chromium=${CHROMIUM_PATH:-/usr/bin/chromium}
  local how="install with: sudo apt-get install -y chromium"
  if [ -x "$chromium" ]; then
    echo "$chromium"
    return
  fi
  local why=""
  if [ "$(id -u)" -ne 0 ]; then
    why="$chromium is missing and this is not root"
  elif ! command -v apt-get >/dev/null 2>&1; then
    why="$chromium is missing and apt-get is not available"
  else
    mkdir -p .tmp
    local log=.tmp/chromium-install.log
    echo "Installing chromium with apt-get (log: $log)" >&2
    # One install at a time (two suites side by side would both run apt and
    # the second would fail on dpkg's lock): the second waits on the first's
    # flock, then finds Chromium there; apt itself waits for a lock held by
    # anything else.
    if timeout "${CHROMIUM_INSTALL_SECONDS:-600}" flock /tmp/sluice-chromium-install.lock bash -c \
      "[ -x '$chromium' ] || { apt-get -o DPkg::Lock::Timeout=300 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq chromium; }" \
      >"$log" 2>&1 && [ -x "$chromium" ]; then
      echo "$chromium"
      return
    fi
    why="apt-get install chromium failed or timed out (see $log)"
  fi
  printf '\n!!! browser suite skipped: %s, %s\n\n' "$why" "$how" >&2
  return 1
}
