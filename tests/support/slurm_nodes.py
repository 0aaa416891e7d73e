"""A second, throwaway Slurm cluster with two nodes on loopback.

The shared one-node cluster (``make slurm-up``, /etc/slurm/slurm.conf) is
left alone: this one has its own ``slurm.conf`` in a temporary folder (every
Slurm tool and daemon finds it through ``SLURM_CONF``), its own
``ClusterName``, ports, state, spool and log folders; ``munged`` is shared.
Its two ``slurmd`` run on one host, each started as ``slurmd -N NODE`` with
its own ``Port=`` and ``%n`` in the spool, pid and log paths: Debian's
22.05.8 build (without ``--enable-multiple-slurmd``) runs them side by side
and each launches the jobs of its node (``SLURMD_NODENAME`` tells a job
where it runs).  Node failures are seen within seconds (``SlurmdTimeout``)
and end the job ``NODE_FAIL`` (``JobRequeue=0``: Slurm's requeue instead
holds the job about two minutes before it may start again).

Needs root (the daemons run as root, like the shared cluster's).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import papa

from .kernels import KernelProcess
from .network import free_port
from .polling import wait_until

NODES = ("node1", "node2")
PARTITION = "multi"
START_TIMEOUT = 60.0

_CONF = """\
# A two-node test cluster written by tests/support/slurm_nodes.py.
ClusterName=zeopapa-multi
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort={ctld_port}
StateSaveLocation={root}/ctld
SlurmdSpoolDir={root}/spool/%n
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd-%n.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={root}/log/jobcomp.log
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=256
SlurmdParameters=config_overrides
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SlurmdTimeout=3
JobRequeue=0
MinJobAge=30
KillWait=2
OverTimeLimit=0
InactiveLimit=0
{nodes}
PartitionName={partition} Nodes={node_list} Default=YES MaxTime=02:00:00 State=UP
"""


def why_not() -> str | None:
    """Why this machine cannot run the cluster, or None."""
    if os.geteuid() != 0:
        return "the two-node Slurm cluster needs root (its daemons run as root)"
    for program in ("slurmctld", "slurmd", "sbatch", "munge"):
        if shutil.which(program) is None and not os.path.exists(f"/usr/sbin/{program}"):
            return f"{program} is not installed; make slurm-up installs Slurm"
    if not os.path.exists("/run/munge/munged.pid"):
        return "munged is not running; make slurm-up starts it"
    return None


class TwoNodeCluster:
    """slurmctld and two slurmd of a cluster of our own, under *root*."""

    def __init__(self, root: Path):
        self.root = root
        self.conf = root / "slurm.conf"
        self.ctld_port = free_port()
        self.node_ports = {node: free_port() for node in NODES}

    @property
    def env(self) -> dict[str, str]:
        """The environment of a process that talks to this cluster."""
        return dict(os.environ, SLURM_CONF=str(self.conf))

    def tool(self, *arguments: str) -> str:
        """Run a Slurm tool against this cluster; its output."""
        return subprocess.run(
            arguments, env=self.env, capture_output=True, text=True, check=True
        ).stdout

    # -- start and stop -------------------------------------------------------------
    def start(self) -> TwoNodeCluster:
        for folder in ("ctld", "run", "log", *(f"spool/{n}" for n in NODES)):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        nodes = "\n".join(
            f"NodeName={node} NodeAddr=127.0.0.1 NodeHostname={os.uname().nodename} "
            f"Port={port} CPUs=2 RealMemory=2048 State=UNKNOWN"
            for node, port in self.node_ports.items()
        )
        self.conf.write_text(
            _CONF.format(
                root=self.root,
                ctld_port=self.ctld_port,
                nodes=nodes,
                partition=PARTITION,
                node_list=",".join(NODES),
            )
        )
        subprocess.run(["slurmctld"], env=self.env, check=True)
        for node in NODES:
            self.start_node(node)
        return self

    def start_node(self, node: str) -> None:
        """Start (or restart) the slurmd of *node*; return once it is idle."""
        subprocess.run(["slurmd", "-N", node], env=self.env, check=True)
        wait_until(
            lambda: self.node_state(node).startswith("idle"),
            START_TIMEOUT,
            message=f"node {node} idle (log {self.root}/log)",
        )

    def node_state(self, node: str) -> str:
        try:
            return self.tool("sinfo", "-h", "-N", "-n", node, "-o", "%t").strip()
        except subprocess.CalledProcessError:
            return ""

    def stop(self) -> None:
        """Cancel every job, stop the daemons and remove the folder."""
        subprocess.run(["scancel", "--full", "-u", "root"], env=self.env, check=False)
        for pid_file in sorted((self.root / "run").glob("*.pid")):
            _terminate(pid_file)
        for node in NODES:
            self._kill_jobs_of(node)
        shutil.rmtree(self.root, ignore_errors=True)

    # -- faults -----------------------------------------------------------------
    def kill_node(self, node: str) -> None:
        """Take *node* down as a power cut would: SIGKILL its slurmd, and the
        slurmstepd of each of its jobs with every process below it."""
        _terminate(self.root / "run" / f"slurmd-{node}.pid", signal.SIGKILL)
        self._kill_jobs_of(node)

    def _kill_jobs_of(self, node: str) -> None:
        log = str(self.root / "log" / f"slurmd-{node}.log")
        for pid in _pids():
            if _has_open(pid, log):  # a slurmstepd of that node logs there
                victims = [pid, *_descendants(pid)]
                for victim in victims:
                    _signal(victim, signal.SIGKILL)
                wait_until(
                    lambda victims=victims: not any(map(_alive, victims)),
                    START_TIMEOUT,
                    message=f"the processes of {node}'s jobs gone",
                )


def _terminate(pid_file: Path, signum: int = signal.SIGTERM) -> None:
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return
    _signal(pid, signum)
    wait_until(lambda: not _alive(pid), START_TIMEOUT, message=f"pid {pid} gone")


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def _has_open(pid: int, path: str) -> bool:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == path:
                return True
        except OSError:
            continue
    return False


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for other in _pids():
        try:
            with open(f"/proc/{other}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(other)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class ClusterKernel(KernelProcess):
    """Our papa kernel (with a state dir) using *cluster* for its Slurm jobs:
    ``SLURM_CONF`` in its environment is all it takes.  Its jobs are
    cancelled when it stops."""

    def __init__(self, cluster: TwoNodeCluster, folder: Path, **options):
        super().__init__(folder, state_dir=folder / "papa-state", **options)
        self.cluster = cluster

    def env(self) -> dict[str, str]:
        return dict(super().env(), SLURM_CONF=str(self.cluster.conf))

    def stop(self, kill_children: bool = False) -> None:
        if self.process is not None and self.process.poll() is None:
            with papa.Papa(self.port_or_path, connection_timeout=30) as client:
                listed = client.list_processes()
            jobs = [
                str(info["slurm_job"])
                for info in listed.values()
                if "slurm_job" in info
            ]
            if jobs:
                subprocess.run(["scancel", *jobs], env=self.cluster.env, check=False)
        super().stop(kill_children=False)  # listed pids of jobs are 0
