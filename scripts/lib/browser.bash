# shellcheck shell=bash
# What the page checks need to drive a browser: Debian's chromium (installed with apt-get when
# missing, as root) and playwright-core at the version package-lock.json pins (npm ci when
# another or none is installed). Never downloads a browser of its own.
#
#   . scripts/lib/browser.bash; browser_ready
#
# Uses the caller's log and die, runs from the repository root; sets CHROMIUM (exported; an
# existing value is kept) and PLAYWRIGHT_VERSION.

browser_ready() {
  export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
  command -v node >/dev/null 2>&1 || die "node is missing (install Node.js 20 or newer)"
  command -v npm >/dev/null 2>&1 || die "npm is missing"
  if [ ! -x "$CHROMIUM" ]; then
    [ "$(id -u)" = 0 ] || die "$CHROMIUM is missing; install Debian's chromium package (apt-get install chromium) as root"
    log "installing chromium (Debian package)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; } ||
      die "apt-get could not install chromium"
    [ -x "$CHROMIUM" ] || die "the chromium package did not provide $CHROMIUM"
  fi
  PLAYWRIGHT_VERSION=$(node -p 'require("./package-lock.json").packages["node_modules/playwright-core"].version') ||
    die "package-lock.json does not pin playwright-core"
  local installed
  installed=$(node -p 'require("./node_modules/playwright-core/package.json").version' 2>/dev/null || true)
  if [ "$installed" != "$PLAYWRIGHT_VERSION" ]; then
    log "installing playwright-core@$PLAYWRIGHT_VERSION from package-lock.json (npm ci)"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >&2 || die "npm ci failed"
  fi
}
