#!/usr/bin/env bash
# Stop the one-node test cluster started by start-cluster.sh.
#
# Cancels every queued and running job first: if slurmd stopped with jobs
# running, slurmstepd and the jobs would outlive it as orphans.  Then stops
# slurmd, slurmctld and munged by their pid files.  With --purge it also
# deletes the cluster's state, logs and slurm.conf (job ids restart at 1);
# the packages stay installed.
set -euo pipefail

SCRIPT_NAME=stop-cluster
# shellcheck source=cluster-common.sh
. "$(dirname "$0")/cluster-common.sh"
DEADLINE_SECONDS=${SLURM_LOCAL_DEADLINE:-30}

purge=0
case "${1:-}" in
    --purge) purge=1 ;;
    "") ;;
    *) die "usage: $0 [--purge]" ;;
esac
[ "$(id -u)" = 0 ] || die "must run as root"

no_active_jobs() {
    [ -z "$(squeue -h -t pending,running,completing,configuring,suspended -o %i 2>/dev/null)" ]
}

cancel_jobs() {
    alive "$RUN_DIR/slurmctld.pid" slurmctld || return 0
    local jobs end
    jobs=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ') || return 0
    [ -n "${jobs// /}" ] || return 0
    say "cancelling jobs $jobs"
    # shellcheck disable=SC2086
    scancel $jobs || true
    end=$((SECONDS + DEADLINE_SECONDS))
    until no_active_jobs; do
        [ $SECONDS -lt $end ] || { say "jobs still active after ${DEADLINE_SECONDS}s"; return 0; }
        sleep 0.1
    done
}

stop_daemon() {
    local pid_file=$1 name=$2 end
    alive "$pid_file" "$name" || return 0
    kill -TERM "$(cat "$pid_file")"
    end=$((SECONDS + DEADLINE_SECONDS))
    while alive "$pid_file" "$name"; do
        if [ $SECONDS -ge $end ]; then
            say "$name ignored SIGTERM for ${DEADLINE_SECONDS}s: SIGKILL"
            kill -KILL "$(cat "$pid_file")" 2>/dev/null || true
            break
        fi
        sleep 0.05
    done
}

cancel_jobs
stop_daemon "$RUN_DIR/slurmd.pid" slurmd
stop_daemon "$RUN_DIR/slurmctld.pid" slurmctld
stop_daemon "$MUNGE_PID" munged
if [ $purge = 1 ]; then
    rm -rf "$SPOOL_DIR" "$LOG_DIR" "$RUN_DIR" "$CONF"
    say "stopped and purged"
else
    say "stopped"
fi
