#!/usr/bin/env bash
# Start a one-node Slurm cluster on loopback for the test suite.
#
# Installs Debian's slurmctld, slurmd, slurm-client and munge when they are
# missing, writes /etc/slurm/slurm.conf (node "localnode", partitions "debug"
# (default, 2 h) and "long" (no limit)), starts munged, slurmctld and slurmd
# by hand (there is no systemd here) and waits until a smoke job has run, so
# that the first test job does not pay slurmctld's first ~3 s scheduling pass.
#
# Idempotent: run it again on a live cluster and it only checks health; if the
# generated config changed it restarts the two Slurm daemons (state is kept).
# Must run as root.  Knobs (environment variables):
#   SLURM_LOCAL_CPUS       CPUs announced for the node (default: the machine's)
#   SLURM_LOCAL_MEM_MB     RealMemory of the node (default: the machine's)
#   SLURM_LOCAL_MIN_JOB_AGE  seconds a finished job stays visible (default 30)
#   SLURM_LOCAL_SMOKE      1 (default) runs the smoke job, 0 skips it
# Stop with tests/slurm/stop-cluster.sh [--purge].
set -euo pipefail

SCRIPT_NAME=start-cluster
# shellcheck source=cluster-common.sh
. "$(dirname "$0")/cluster-common.sh"
DEADLINE_SECONDS=${SLURM_LOCAL_DEADLINE:-60}

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts daemons)"

# Poll "$@" until it succeeds or the deadline passes.
wait_until() {
    local what=$1; shift
    local end=$((SECONDS + DEADLINE_SECONDS))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || die "timed out after ${DEADLINE_SECONDS}s waiting for $what (logs in $LOG_DIR)"
        sleep 0.1
    done
}

install_packages() {
    local missing=0
    for program in /usr/sbin/slurmctld /usr/sbin/slurmd /usr/bin/sbatch /usr/sbin/munged; do
        [ -x "$program" ] || missing=1
    done
    [ $missing = 1 ] || return 0
    say "installing slurmctld slurmd slurm-client munge"
    # We start everything by hand below, with our own config and pid files.
    . "$(dirname "$0")/../support/apt-install.sh"
    apt_install slurmctld slurmd slurm-client munge
}

start_munge() {
    id munge >/dev/null 2>&1 || die "user munge missing: reinstall the munge package"
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /etc/munge
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    if alive "$MUNGE_PID" munged; then
        return 0
    fi
    runuser -u munge -- /usr/sbin/munged --pid-file="$MUNGE_PID"
    wait_until "munged" sh -c 'munge -n | unmunge'
}

write_config() {
    local detected cpus memory
    detected=$(slurmd -C | head -1)
    cpus=${SLURM_LOCAL_CPUS:-$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$detected")}
    memory=${SLURM_LOCAL_MEM_MB:-$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$detected")}
    [ -n "$cpus" ] && [ -n "$memory" ] || die "cannot read CPUs/RealMemory from 'slurmd -C': $detected"
    mkdir -p /etc/slurm
    cat >"$CONF.new" <<EOF
# Written by tests/slurm/start-cluster.sh: a one-node test cluster on loopback.
# Do not edit: rerun the script with other knobs instead.
ClusterName=localcluster
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$SPOOL_DIR/ctld
SlurmdSpoolDir=$SPOOL_DIR/d
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups: they may be unavailable in a sandbox; limits are scheduled only.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# Keeps one line per finished job, even after the job is purged from memory.
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log
SchedulerType=sched/backfill
# The default batch_sched_delay=3 starts batch jobs up to 3 s late.
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without it every job gets the whole node's memory: one job at a time.
DefMemPerCPU=256
# Trust the node line (allows more CPUs than cores; never drains on mismatch).
SlurmdParameters=config_overrides
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
MinJobAge=${SLURM_LOCAL_MIN_JOB_AGE:-30}
KillWait=5
OverTimeLimit=0
InactiveLimit=0
NodeName=localnode NodeAddr=127.0.0.1 CPUs=$cpus Boards=1 SocketsPerBoard=1 CoresPerSocket=$cpus ThreadsPerCore=1 RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=localnode Default=YES MaxTime=02:00:00 State=UP
PartitionName=long  Nodes=localnode Default=NO  MaxTime=INFINITE State=UP
EOF
    if [ -f "$CONF" ] && cmp -s "$CONF" "$CONF.new"; then
        rm -f "$CONF.new"
        return 1 # unchanged
    fi
    mv "$CONF.new" "$CONF"
    return 0
}

stop_daemon() {
    local pid_file=$1 name=$2
    alive "$pid_file" "$name" || return 0
    kill -TERM "$(cat "$pid_file")"
    local end=$((SECONDS + DEADLINE_SECONDS))
    while alive "$pid_file" "$name"; do
        [ $SECONDS -lt $end ] || die "$name did not stop within ${DEADLINE_SECONDS}s"
        sleep 0.05
    done
}

node_ready() {
    local state
    state=$(sinfo -h -n localnode -o %t 2>/dev/null | head -1)
    case "$state" in idle* | mix* | alloc*) return 0 ;; *) return 1 ;; esac
}

smoke_job() {
    local job_id state end
    job_id=$(sbatch --parsable -p debug -o /dev/null -J smoke --wrap true) ||
        die "sbatch of the smoke job failed"
    job_id=${job_id%%;*}
    end=$((SECONDS + DEADLINE_SECONDS))
    while :; do
        state=$(squeue -h -t all -j "$job_id" -o %T 2>/dev/null || true)
        [ "$state" = COMPLETED ] && return 0
        case "$state" in FAILED | CANCELLED* | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL)
            die "smoke job $job_id ended $state" ;;
        esac
        [ $SECONDS -lt $end ] || die "smoke job $job_id not COMPLETED after ${DEADLINE_SECONDS}s (state '$state')"
        sleep 0.1
    done
}

install_packages
install -d -m 0755 "$RUN_DIR" "$SPOOL_DIR/ctld" "$SPOOL_DIR/d" "$LOG_DIR"
start_munge
if write_config; then
    say "slurm.conf written"
    # A changed config only takes effect through a restart; state is kept.
    stop_daemon "$RUN_DIR/slurmd.pid" slurmd
    stop_daemon "$RUN_DIR/slurmctld.pid" slurmctld
fi
alive "$RUN_DIR/slurmctld.pid" slurmctld || slurmctld
alive "$RUN_DIR/slurmd.pid" slurmd || slurmd -N localnode
wait_until "node localnode to be idle" node_ready
if [ "${SLURM_LOCAL_SMOKE:-1}" = 1 ]; then
    smoke_job
fi
say "cluster up: partitions $(sinfo -h -o %P | tr '\n' ' ')"
