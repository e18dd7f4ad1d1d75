#!/usr/bin/env bash
# Install the browser used by the end-to-end tests: Debian's Chromium plus fonts so text renders.
#
# Playwright's own `playwright install` downloads browsers from a CDN and fails offline/in CI here;
# Playwright (pip) drives the distribution's Chromium at /usr/bin/chromium instead.
#
# Idempotent: does nothing when /usr/bin/chromium already exists (set FORCE=1 to reinstall).
# Non-interactive. Fails loudly (non-zero exit, message on stderr) when it cannot install.
# Needs root, or passwordless sudo.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
PACKAGES=(chromium fonts-liberation fonts-dejavu-core)

die() {
    echo "install_browser.sh: ERROR: $*" >&2
    exit 1
}

if [[ -x "$CHROMIUM" && "${FORCE:-0}" != "1" ]]; then
    echo "install_browser.sh: $CHROMIUM already present: $("$CHROMIUM" --version 2>/dev/null || echo 'version unknown')"
    exit 0
fi

command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install Chromium at $CHROMIUM by hand (Debian/Ubuntu package 'chromium')."

SUDO=()
if [[ "$(id -u)" != "0" ]]; then
    command -v sudo >/dev/null 2>&1 || die "must run as root (or have sudo) to apt-get install ${PACKAGES[*]}."
    SUDO=(sudo -n)
fi

export DEBIAN_FRONTEND=noninteractive
echo "install_browser.sh: apt-get update"
"${SUDO[@]}" apt-get update -q || die "apt-get update failed (no network or apt sources?)."

echo "install_browser.sh: apt-get install ${PACKAGES[*]}"
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" \
    || die "apt-get install ${PACKAGES[*]} failed."

[[ -x "$CHROMIUM" ]] || die "installed packages but $CHROMIUM is still missing."
"$CHROMIUM" --version || die "$CHROMIUM is installed but does not start."
echo "install_browser.sh: OK"
