# Sourced by the scripts that install Debian packages for tests and
# benchmarks (install-postgresql.sh, start-cluster.sh, install-rabbitmq.sh):
# `apt_install PACKAGE...` installs them without recommends, keeping their
# init scripts from starting daemons of their own (the tests and benchmarks
# start what they need by hand, with their own config).  Needs root.
apt_install() {
    local own_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    local status=0
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -q >/dev/null &&
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q \
            --no-install-recommends "$@" >/dev/null || status=$?
    [ $own_policy = 0 ] || rm -f /usr/sbin/policy-rc.d
    return $status
}
