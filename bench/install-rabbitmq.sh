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
. "$(dirname "$0")/../tests/support/apt-install.sh"
apt_install rabbitmq-server
command -v rabbitmq-server >/dev/null
