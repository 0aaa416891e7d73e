#!/usr/bin/env bash
# Install Debian's PostgreSQL server programs (initdb, pg_ctl) for the
# RelStorage tests when they are missing.  Starts nothing: the tests start a
# throwaway cluster of their own in a temporary directory, as a non-root user
# (tests/support/postgresql.py).  Must run as root when it has to install.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    exit 0
fi
[ "$(id -u)" = 0 ] || { echo "install-postgresql: not root: install Debian's postgresql yourself" >&2; exit 1; }
echo "install-postgresql: installing postgresql" >&2
. "$(dirname "$0")/apt-install.sh"
apt_install postgresql
ls /usr/lib/postgresql/*/bin/initdb >/dev/null
