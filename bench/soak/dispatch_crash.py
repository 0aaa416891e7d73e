"""Soak: dispatch's consumers, runners and supervisor killed with SIGKILL.

``python bench/soak/dispatch_crash.py --transitions 10000 --kills 100``
(``make soak``).  A real runzeo (FileStorage in a temporary directory), a
real papa kernel and ``dispatch supervise`` keeping three services running
as papa processes: ``first`` and ``last`` (``Count`` consumers) and
``runner`` (a ``CommandRunner``), see ``dispatch_soak_services.py``.  One run
of a three-step recipe carries ``transitions / 3`` messages through

1. ``Count`` on ``soak.first``;
2. a command step: ``/bin/sh`` appends its message id to ``starts`` (the
   record of every program start) and exits 0;
3. ``Count`` on ``soak.last``.

Every handler adds one to its message's entry in a tree in zeo, in the
transaction of the transition.  Meanwhile a killer sends SIGKILL ``--kills``
times, spread over the run, to a random consumer, runner or the supervisor
(the supervisor restarts the instances; the harness restarts a killed
supervisor).  At the end:

* every message of the run is done, with exactly one committed effect
  (``effects`` min = max = 1), ``lost`` = 0 (messages not done, or steps
  never reached);
* ``dead letters`` = 0: no fault may dead-letter a message;
* ``programs twice`` = 0: the design (DESIGN.md 2.6, docs/dispatch.rst)
  names a step's program after its message and acknowledges its end to papa
  only after committing it, so a redelivered message adopts its program, or
  takes the exit code an earlier delivery committed; with the papa kernel
  alive no program is ever started a second time;
* no step program is left in papa.

It prints a table on stderr and one JSON line on stdout; the exit status is
1 if anything was lost, doubled or dead-lettered.
``tests/dispatch/test_crash_soak.py`` runs a short version.
"""

import argparse
import collections
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path[:0] = [str(HERE.parent), str(HERE), str(ROOT / "src")]

from _kernels import start_listening_kernel  # noqa: E402
from _servers import free_port, start_our_runzeo  # noqa: E402
from dispatch_bench import start_run  # noqa: E402
from dispatch_soak_services import DONE, EFFECTS  # noqa: E402

import zeo  # noqa: E402
from dispatch.state import model  # noqa: E402
from dispatch.state.database import dispatch_state  # noqa: E402

# No progress for this long means something is stuck (a lapsing claim
# would take 300 s: every claim of a killed instance must be released).
STALL = 120.0
PREFIX = "soak"
SERVICES = {  # section: (service, queue, instances)
    "first": ("dispatch_soak_services:Count", "soak.first", 2),
    "runner": ("dispatch_soak_services:Runner", "dispatch.commands", 2),
    "last": ("dispatch_soak_services:Count", "soak.last", 2),
}
KINDS = {"consumer": ("first", "last"), "runner": ("runner",), "supervisor": ()}


def recipe(messages, starts):
    program = f'echo "$DISPATCH_MESSAGE $$" >> {starts}'
    return {
        "1": {"queue": "soak.first", "output": 2},
        "2": {"command": ["/bin/sh", "-c", program], "output": 3},
        "3": {"queue": "soak.last"},
        "start": [[1, {"n": n}] for n in range(messages)],
    }


def configuration(zeo_address, papa_port):
    text = (
        f"zeo {zeo_address}\npapa {papa_port}\nname {PREFIX}\n"
        "restart-backoff 0.1\nrestart-backoff-cap 2\nstable-after 5\n"
    )
    for section, (service, queue, instances) in SERVICES.items():
        text += (
            f"<service {section}>\n  service {service}\n  queue {queue}\n"
            f"  instances {instances}\n</service>\n"
        )
    return text


class Processes:
    """The papa kernel and the supervisor, and the instances it keeps."""

    def __init__(self, directory, zeo_address, environment):
        self.directory = directory
        self.environment = environment
        self.papa_port = free_port()
        self.kernel = start_listening_kernel(
            [sys.executable, "-m", "papa", "-p", str(self.papa_port)],
            self.papa_port,
            environment,
            str(directory),
            "papa kernel",
        )
        self.configuration = directory / "dispatch.conf"
        self.configuration.write_text(configuration(zeo_address, self.papa_port))
        self.log = open(directory / "supervise.log", "ab")  # noqa: SIM115
        self.supervisor = None

    def start_supervisor(self):
        self.supervisor = subprocess.Popen(
            [sys.executable, "-m", "dispatch.cli", "supervise"]
            + ["-C", str(self.configuration)],
            env=self.environment,
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def instances(self, sections):
        """``[pid]`` of the running instances of *sections*."""
        import papa

        with papa.Papa(self.papa_port) as kernel:
            listed = kernel.list_processes(f"{PREFIX}.*")
        return [
            int(info["pid"])
            for name, info in listed.items()
            if info.get("running") and name.split(".")[1] in sections
        ]

    def step_programs(self):
        import papa

        with papa.Papa(self.papa_port) as kernel:
            return sorted(kernel.list_processes("dispatch-step.*"))

    def kill(self, kind, generator):
        """SIGKILL one process of *kind*; False if none was running."""
        if kind == "supervisor":
            self.supervisor.send_signal(signal.SIGKILL)
            self.supervisor.wait()
            self.start_supervisor()
            return True
        running = self.instances(KINDS[kind])
        if not running:
            return False
        try:
            os.kill(generator.choice(running), signal.SIGKILL)
        except ProcessLookupError:
            return False
        return True

    def stop_supervisor(self):
        if self.supervisor is not None and self.supervisor.poll() is None:
            self.supervisor.send_signal(signal.SIGTERM)
            try:
                self.supervisor.wait(STALL)
            except subprocess.TimeoutExpired:
                self.supervisor.kill()
                self.supervisor.wait()

    def stop(self):
        """Stop everything; an instance left running (a failure) is killed."""
        self.stop_supervisor()
        for pid in self.instances(tuple(SERVICES)):
            os.kill(pid, signal.SIGKILL)
        self.kernel.terminate()
        self.kernel.wait()
        self.log.close()


def prepare(database):
    from BTrees.Length import Length
    from BTrees.OIBTree import OIBTree

    with database.transaction() as connection:
        root = connection.root()
        root[EFFECTS] = OIBTree()
        root[DONE] = Length()


def done_so_far(database):
    with database.transaction() as connection:
        return connection.root()[DONE]()


class Progress:
    """Waits for the count of committed effects, failing when it stalls."""

    def __init__(self, database):
        self.database = database
        self.last, self.moved = -1, time.monotonic()

    def wait(self, condition, what):
        while True:
            done = done_so_far(self.database)
            if done != self.last:
                self.last, self.moved = done, time.monotonic()
            if condition(done):
                return
            if time.monotonic() - self.moved > STALL:
                raise TimeoutError(f"{what}: no transition for {STALL:.0f} s at {done}")
            time.sleep(0.05)


def drive(progress, processes, transitions, kills, generator):
    """Kill *kills* times, kill k once k/(kills+1) of the *transitions* are
    done (and a random moment more); returns the kills by kind."""
    by_kind = collections.Counter()
    for number in range(1, kills + 1):
        goal = number * transitions // (kills + 1)
        progress.wait(lambda done, goal=goal: done >= goal, f"kill {number}")
        time.sleep(generator.uniform(0.0, 0.2))  # the fault's moment, at random
        kind = generator.choice(sorted(KINDS))
        deadline = time.monotonic() + STALL
        while not processes.kill(kind, generator):
            # Every instance of that kind is restarting.
            if processes.supervisor.poll() is not None:
                raise RuntimeError("the supervisor exited by itself: see its log")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {kind} running for {STALL:.0f} s")
            time.sleep(0.05)
        by_kind[kind] += 1
    return by_kind


def run_status(database, run_id):
    with dispatch_state(database) as dispatch:
        return dispatch.runs[run_id].status


def started_programs(starts):
    counts = collections.Counter()
    if starts.exists():
        for line in starts.read_text().splitlines():
            counts[line.split()[0]] += 1
    return counts


def check(database, run_id, starts):
    """The figures of the run: effects per message, lost, dead letters,
    programs started twice, and deliveries by outcome."""
    started = started_programs(starts)
    outcomes = collections.Counter()
    with dispatch_state(database) as dispatch:
        run = dispatch.runs[run_id]
        effects = dispatch._p_jar.root()[EFFECTS]
        counts, lost, twice, adopted = [], 0, 0, 0
        per_step = collections.Counter()
        for message in run.messages.values():
            per_step[message.node] += 1
            for attempt in message.attempts:
                outcomes[attempt.outcome] += 1
                adopted += bool((attempt.program or {}).get("adopted"))
            if message.state != model.DONE:
                lost += 1
            counts.append(effects.get(str(message.id), 0))
            if message.node == 2:
                twice += started[str(message.id)] > 1
                lost += started[str(message.id)] == 0
        first = per_step[1]
        lost += sum(first - per_step[node] for node in (2, 3))
        figures = {
            "messages": len(counts),
            "effects_min": min(counts),
            "effects_max": max(counts),
            "effects_not_one": sum(1 for count in counts if count != 1),
            "lost": lost,
            "dead_letters": dispatch.dead_count(),
            "programs_twice": twice,
            "program_starts": sum(started.values()),
            "programs_adopted": adopted,
            "status": run.status,
        }
    figures["deliveries"] = dict(sorted(outcomes.items(), key=str))
    return figures


def soak(transitions, kills, directory, seed):
    generator = random.Random(seed)
    messages = max(1, -(-transitions // 3))  # at least *transitions*
    starts = directory / "starts"
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(HERE)])
    log = open(directory / "runzeo.log", "ab")  # noqa: SIM115
    server, text = start_our_runzeo(directory, stdout=log, stderr=subprocess.STDOUT)
    host, port = text.rsplit(":", 1)
    try:
        processes = Processes(directory, text, environment)
    except BaseException:
        server.terminate()
        server.wait()
        raise
    database = zeo.DB((host, int(port)), wait_timeout=STALL)
    began = time.monotonic()
    try:
        prepare(database)
        processes.start_supervisor()
        run_id = start_run(database, recipe(messages, starts))
        progress = Progress(database)
        by_kind = drive(progress, processes, 3 * messages, kills, generator)
        progress.wait(
            lambda done: run_status(database, run_id) != model.RUNNING, "the run"
        )
        seconds = time.monotonic() - began
        processes.stop_supervisor()
        figures = check(database, run_id, starts)
        figures["step_programs_left"] = processes.step_programs()
    finally:
        processes.stop()
        database.close()
        server.terminate()
        server.wait()
        log.close()
    figures.update(
        soak="dispatch_crash",
        seed=seed,
        transitions=3 * messages,
        kills=sum(by_kind.values()),
        kills_by_kind=dict(sorted(by_kind.items())),
        seconds=round(seconds, 1),
    )
    return figures


TABLE = [
    ("transitions", "transitions"),
    ("kills (consumer/runner/supervisor)", "kills"),
    ("effects per message min/max", "effects"),
    ("lost", "lost"),
    ("dead letters", "dead_letters"),
    ("programs started twice", "programs_twice"),
    ("programs adopted after a kill", "programs_adopted"),
    ("time (s)", "seconds"),
]


def table(figures):
    kinds = figures["kills_by_kind"]
    shown = dict(
        figures,
        kills=f"{figures['kills']} ({'/'.join(str(kinds.get(k, 0)) for k in sorted(KINDS))})",
        effects=f"{figures['effects_min']}/{figures['effects_max']}",
    )
    width = max(len(label) for label, _ in TABLE)
    return "\n".join(f"{label:<{width}}  {shown[key]}" for label, key in TABLE)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transitions", type=int, default=10000)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--directory", type=Path, default=None)
    arguments = parser.parse_args(argv)
    seed = arguments.seed if arguments.seed is not None else random.randrange(2**32)
    directory = arguments.directory or Path(tempfile.mkdtemp(prefix="dispatch_crash-"))
    figures = soak(arguments.transitions, arguments.kills, directory, seed)
    print(table(figures), file=sys.stderr)
    print(json.dumps(figures))
    bad = (
        figures["lost"]
        or figures["dead_letters"]
        or figures["programs_twice"]
        or figures["effects_not_one"]
        or figures["step_programs_left"]
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
