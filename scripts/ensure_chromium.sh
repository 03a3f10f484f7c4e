#!/usr/bin/env bash
# Browser tests drive Debian's Chromium through Playwright (Playwright's own browser download is
# not used). Install it when missing and we are allowed to.
set -euo pipefail
CHROMIUM=${HMIX_CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
  echo "Chromium found at $CHROMIUM"
  exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "Installing Chromium from Debian packages..."
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
[ -x "$CHROMIUM" ] || { echo "Chromium not found at $CHROMIUM; set HMIX_CHROMIUM" >&2; exit 1; }
echo "Chromium installed at $CHROMIUM"
