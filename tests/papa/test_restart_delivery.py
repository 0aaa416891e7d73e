"""What a restarted kernel still owes its watchers, and what it must not resend.

Found by the papa kill soak (``bench/soak/papa_crash.py``):

* a Slurm job's output was tailed from the bytes *read*, saved with the
  debounced snapshot, so output read but not delivered when the kernel
  died was lost; it is now delivered from the last *acknowledged* byte,
  journaled before the next batch goes out (as for spilled children, whose
  acknowledgements were also only in the snapshot: a restart sent again
  batches acknowledged long before);
* an ended Slurm job whose output was not all read was not kept in the
  state file at all, and a clean kernel stop deleted its folder.

A process that ended with its end not yet delivered is there after a
restart, with its exit code; once that end was delivered and acknowledged
it never comes back.
"""

from __future__ import annotations

import sys

import pytest

import papa
from papa.state import StateDirectory

from .conftest import read_all, wait_for

JOB_DEADLINE = 90


def saved_record(state_dir, name):
    """A process's record as a kernel started now would read it."""
    saved = StateDirectory(str(state_dir)).load()
    return next(r for r in saved["processes"] if r["spec"]["name"] == name)


def make_local(client, name, script, spill):
    words = ["m", "p", name, "spill=1"] if spill else ["m", "p", name]
    client.connection.command(words + [sys.executable, "-c", script])


def ended(client, name):
    return not client.list_processes(name)[name]["running"]


def restart(kernel, start, stop):
    if stop == "sigkill":
        kernel.kill()
    else:
        kernel.stop(kill_children=False)
    return start()


@pytest.mark.parametrize(
    ("spill", "stop"), [(True, "sigkill"), (False, "sigterm")], ids=["spill", "pipe"]
)
def test_an_ended_child_is_kept_until_delivered_then_never_again(
    kernel_factory, tmp_path, spill, stop
):
    state = tmp_path / "state"

    def start():
        return kernel_factory(state_dir=state)

    kernel = start()
    with papa.Papa(kernel.port_or_path) as client:
        make_local(client, "ender", "print('last words'); raise SystemExit(6)", spill)
        wait_for(lambda: ended(client, "ender"), message="the child's end")
    kernel = restart(kernel, start, stop)
    with papa.Papa(kernel.port_or_path) as client:
        assert "ender" in client.list_processes()
        out, _, closed = read_all(client.watch_processes("ender"))
    assert closed == {"ender": 6}
    if spill:
        assert out == b"last words\n"
    kernel = restart(kernel, start, stop)
    with papa.Papa(kernel.port_or_path) as client:
        assert client.list_processes() == {}


@pytest.mark.parametrize(
    "kind", ["spill", pytest.param("slurm", marks=pytest.mark.slurm)]
)
def test_output_resumes_from_the_last_acknowledged_byte(request, tmp_path, kind):
    state = tmp_path / "kept-state"
    go = [tmp_path / "go1", tmp_path / "go2"]
    script = (
        f"echo a; while [ ! -e '{go[0]}' ]; do sleep 0.05; done; echo b; "
        f"while [ ! -e '{go[1]}' ]; do sleep 0.05; done; echo c; exit 4"
    )
    factory = request.getfixturevalue(
        "slurm_kernels" if kind == "slurm" else "kernel_factory"
    )
    first = factory(state_dir=state)
    client = papa.Papa(first.port_or_path, connection_timeout=JOB_DEADLINE)
    if kind == "slurm":
        info = client.make_process("phases", "/bin/sh", ["-c", script], slurm={})
        identity, file_key = ("slurm_job", info["slurm_job"]), "out.txt"
    else:
        client.connection.command(
            ["m", "p", "phases", "spill=1", "/bin/sh", "-c", script]
        )
        identity, file_key = ("pid", client.list_processes()["phases"]["pid"]), "out"
    watcher = client.watch_processes("phases")
    assert b"".join(item.data for item in watcher.read()[0]) == b"a\n"
    go[0].touch()
    # read() acknowledges "a" first; "b" arrives and is never acknowledged.
    assert b"".join(item.data for item in watcher.read()[0]) == b"b\n"
    # The acknowledgement was journaled before "b" was sent.
    assert saved_record(state, "phases")["acknowledged"] == {file_key: 2}
    client.close()
    first.kill()
    go[1].touch()
    second = factory(state_dir=state)
    with papa.Papa(second.port_or_path, connection_timeout=JOB_DEADLINE) as client:
        assert client.list_processes()["phases"][identity[0]] == identity[1]
        out, _, closed = read_all(client.watch_processes("phases"), JOB_DEADLINE)
    assert out == b"b\nc\n"  # "b" again (never acknowledged), "a" not
    assert closed == {"phases": 4}


@pytest.mark.slurm
def test_an_ended_job_is_kept_until_delivered_then_never_again(slurm_kernels, tmp_path):
    # A clean stop: it used to delete the folder of an ended job, and the
    # snapshot it writes left the job out.
    stop = "sigterm"
    state = tmp_path / "kept-state"

    def start():
        return slurm_kernels(state_dir=state)

    kernel = start()
    with papa.Papa(kernel.port_or_path, connection_timeout=JOB_DEADLINE) as client:
        info = client.make_process(
            "done", "/bin/sh", ["-c", "echo finished; exit 9"], slurm={}
        )
        wait_for(
            lambda: ended(client, "done"), timeout=JOB_DEADLINE, message="the job's end"
        )
        client.set("after", "end")  # a change: a snapshot taken after the end
    wait_for(
        lambda: '"after": "end"' in (state / "state.json").read_text(),
        message="a snapshot after the end",
    )
    kernel = restart(kernel, start, stop)
    with papa.Papa(kernel.port_or_path, connection_timeout=JOB_DEADLINE) as client:
        assert client.list_processes()["done"]["slurm_job"] == info["slurm_job"]
        out, _, closed = read_all(client.watch_processes("done"), JOB_DEADLINE)
    assert (out, closed) == (b"finished\n", {"done": 9})
    kernel = restart(kernel, start, stop)
    with papa.Papa(kernel.port_or_path, connection_timeout=JOB_DEADLINE) as client:
        assert client.list_processes() == {}


@pytest.mark.slurm
def test_job_output_beyond_the_buffer_is_kept_and_cancel_still_answers(
    slurm_kernels, tmp_path
):
    # Output is read at most a buffer at a time (nothing dropped), so the
    # closed record waits for watchers; cancel answers as soon as Slurm says.
    kernel = slurm_kernels()
    written = tmp_path / "written"
    script = f"seq 1 40000; touch '{written}'; sleep 300"
    with papa.Papa(kernel.port_or_path, connection_timeout=JOB_DEADLINE) as client:
        client.make_process("big", "/bin/sh", ["-c", script], bufsize=4096, slurm={})
        wait_for(written.exists, timeout=JOB_DEADLINE, message="the output written")
        cancelled = client.cancel_processes("big")  # the shell's 143, or -15
        assert cancelled["big"] in (143, -15)
        out, _, closed = read_all(client.watch_processes("big"), JOB_DEADLINE)
    assert out.split(b"\n") == [str(n).encode() for n in range(1, 40001)] + [b""]
    assert closed == cancelled
