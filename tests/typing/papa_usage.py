"""User code from README.rst and docs/papa.rst, checked by mypy.

Not a test module (pytest does not collect it and nothing calls these
functions): ``make lint`` type-checks it, so a change that breaks the
documented use of ``papa`` fails there.  ``assert_type`` pins what the
public methods return; a ``# type: ignore[...]`` marks a call mypy must
reject (``warn_unused_ignores`` fails the check if it stops rejecting it).
"""

from __future__ import annotations

import select
from typing import Any, assert_type

import papa
from papa import Papa, ProcessOutput, WatchBatch, Watcher


def readme_example() -> None:
    with Papa() as p:  # starts a kernel if none answers
        p.make_socket("web", port=8080)
        p.set("recipe", "x")
        p.make_process("worker", "python", args=["serve.py", "$(socket.web.fileno)"])
        with p.watch_processes("worker") as watcher:
            while watcher:
                for item in watcher.read():
                    print(item)
                watcher.acknowledge()


def docs_example() -> None:
    with papa.Papa() as p:
        p.set("recipe", "x")
        p.make_socket("web", port=8080)
        p.make_process(
            "web",
            "/usr/bin/python3",
            args=["-m", "myserver", "--fd", "$(socket.web.fileno)"],
            env={"PATH": "/usr/bin"},
        )
        with p.watch_processes("web") as watcher:
            while watcher:
                out, err, closed = watcher.read()
                for output in out:
                    assert_type(output, ProcessOutput)


def make_process_returns(p: Papa) -> None:
    """A dict without watch_immediately, a Watcher with watch_immediately=True."""
    info = p.make_process("job", "/bin/true", stdout=papa.DEVNULL)
    assert_type(info, dict[str, Any])
    pid: int = info["pid"]
    print(pid, info["running"])

    info = p.make_process("job", "/bin/true", watch_immediately=False)
    assert_type(info, dict[str, Any])

    watcher = p.make_process("job", "/bin/true", watch_immediately=True)
    assert_type(watcher, Watcher)
    batch = watcher.read()
    assert_type(batch, WatchBatch)
    select.select([watcher], [], [], 1.0)
    print(watcher.exit_code.get("job"))
    watcher.close()

    # A bool only known at run time: either one, the caller must check.
    either = p.make_process("job", "/bin/true", watch_immediately=bool(pid))
    assert_type(either, dict[str, Any] | Watcher)
    if isinstance(either, Watcher):
        either.close()

    # Indexing a Watcher, or reading a dict, is a type error.
    p.make_process("job", watch_immediately=True)["pid"]  # type: ignore[index]
    p.make_process("job").read()  # type: ignore[attr-defined]


def slurm_example(p: Papa) -> None:
    p.make_process(
        "render",
        "/usr/bin/python3",
        args=["render.py"],
        slurm={
            "partition": "debug",
            "nprocs": 2,
            "runtime": "30:00",
            "environment": "local",
        },
    )
    assert_type(p.list_processes("render"), dict[str, dict[str, Any]])
    assert_type(p.cancel_processes("render"), dict[str, int | None])


def values_and_sockets(p: Papa) -> None:
    assert_type(p.get("recipe"), str | None)
    assert_type(p.list_values("recipe.*"), dict[str, str])
    assert_type(p.make_socket("web", port=8080), dict[str, Any])
    assert_type(p.list_sockets(), dict[str, dict[str, Any]])
    assert_type(p.remove_values("recipe"), bool)
    papa.set_default_port(20202)
    papa.set_default_connection_timeout(5)
    Papa(port_or_path=["not", "a", "port"])  # type: ignore[arg-type]
