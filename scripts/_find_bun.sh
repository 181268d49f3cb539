# Bun from the npm registry, pinned; installed into .tools/ on first use.
# Sourced by scripts/test.sh and scripts/bench.sh (run from the repo root).

BUN_VERSION=1.4.5

# Prints the path of Bun $BUN_VERSION: the one on PATH if it is that version,
# else .tools/'s, installed from the npm registry if missing.
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
