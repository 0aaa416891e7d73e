# Shared by start-cluster.sh and stop-cluster.sh (sourced, not run): where
# the one-node test cluster keeps its files, messages, and the liveness test
# of its daemons.  The sourcing script sets SCRIPT_NAME first.

RUN_DIR=/run/slurm-local
SPOOL_DIR=/var/spool/slurm-local
LOG_DIR=/var/log/slurm-local
CONF=/etc/slurm/slurm.conf
MUNGE_PID=/run/munge/munged.pid

say() { echo "$SCRIPT_NAME: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# True when the pid in file $1 is a live (non-zombie) process named $2.  The
# machine's PID 1 reaps orphans lazily, so a dead daemon can linger as a
# zombie that `kill -0` still finds; a stale pid file can name a reused pid.
alive() {
    local pid_file=$1 name=$2 pid state
    [ -s "$pid_file" ] || return 1
    pid=$(cat "$pid_file" 2>/dev/null) || return 1
    [ -r "/proc/$pid/stat" ] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 1
    state=$(sed 's/.*) \(.\).*/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
    [ "$state" != Z ]
}
