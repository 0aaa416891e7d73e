#!/usr/bin/env bash
# Debian's chromium (and chromium-driver) for the browser tests, installed
# with apt when missing, never a browser download of Playwright's own.
# Not root or no apt: say why and exit 1 (the browser tests then skip,
# unless ZEOPAPA_REQUIRE_BROWSER is set, as in CI).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "install-chromium: not root or no apt-get: install chromium by hand" >&2
    exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
