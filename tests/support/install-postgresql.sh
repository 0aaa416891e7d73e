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
# Keep the package's init script from starting a cluster of its own.
own_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -q >/dev/null
apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends postgresql >/dev/null
[ $own_policy = 0 ] || rm -f /usr/sbin/policy-rc.d
ls /usr/lib/postgresql/*/bin/initdb >/dev/null
