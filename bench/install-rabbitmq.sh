#!/usr/bin/env bash
# Install Debian's rabbitmq-server for bench/zocalo_bench.py (zocalo's real
# broker) when it is missing.  Starts nothing: the benchmark starts a broker
# of its own in a temporary directory on free ports.  Must run as root when
# it has to install.
set -euo pipefail
if [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || command -v rabbitmq-server >/dev/null 2>&1; then
    exit 0
fi
[ "$(id -u)" = 0 ] || { echo "install-rabbitmq: not root: install Debian's rabbitmq-server yourself" >&2; exit 1; }
echo "install-rabbitmq: installing rabbitmq-server" >&2
# Keep the package's init script from starting a broker of its own.
own_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -q >/dev/null
apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends rabbitmq-server >/dev/null
[ $own_policy = 0 ] || rm -f /usr/sbin/policy-rc.d
command -v rabbitmq-server >/dev/null
