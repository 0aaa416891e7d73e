"""The state directory survives SIGKILL at any moment: what was answered is kept.

Found by the papa soak (``bench/soak/papa_crash.py``): a ``set`` answered
less than 50 ms before the kernel was killed was lost, because state.json
is written that long after a change.  The journal is written before the
reply.
"""

import json
import sys

import papa
from papa.state import StateDirectory

from .conftest import read_all


def test_values_answered_just_before_sigkill_are_kept(kernel_factory, tmp_path):
    state = tmp_path / "state"
    first = kernel_factory(state_dir=state)
    client = papa.Papa(first.port_or_path)
    for number in range(200):
        client.set(f"value{number}", str(number))
    client.set("value7", None)  # a deletion is kept too
    client.close()
    first.kill()  # at once: the snapshot of the last sets is not written yet
    second = kernel_factory(state_dir=state)
    client = papa.Papa(second.port_or_path)
    try:
        listed = client.list_values()
    finally:
        client.close()
    expected = {f"value{n}": str(n) for n in range(200) if n != 7}
    assert listed == expected


def test_process_record_is_journaled_before_the_reply(kernel_factory, tmp_path):
    state = tmp_path / "state"
    first = kernel_factory(state_dir=state)
    client = papa.Papa(first.port_or_path)
    sleeper = client.make_process("sleeper", "/bin/sleep", args="120")
    client.close()
    first.kill()
    second = kernel_factory(state_dir=state)
    client = papa.Papa(second.port_or_path)
    try:
        listed = client.list_processes()
        assert listed["sleeper"]["pid"] == sleeper["pid"]
        assert listed["sleeper"]["running"] is True
    finally:
        client.close()


def test_torn_journal_line_is_skipped_and_the_rest_replayed(tmp_path):
    directory = StateDirectory(str(tmp_path))
    (tmp_path / "state.json").write_text(
        json.dumps({"format": 1, "journal": 3, "values": {"old": "1"}})
    )
    # A stale journal (older than the snapshot names) is not replayed.
    (tmp_path / "journal.2").write_text('{"set":"old","value":"stale"}\n')
    (tmp_path / "journal.3").write_text(
        '{"set":"a","value":"1"}\n{"remove":["old"]}\n{"set":"b","val'
    )
    (tmp_path / "journal.4").write_text('{"set":"c","value":"3"}\n')
    state = directory.load()
    assert state["values"] == {"a": "1", "c": "3"}
    # New lines go to a journal no older kernel wrote.
    directory.record({"set": "d", "value": "4"})
    assert (tmp_path / "journal.5").read_text() == '{"set":"d","value":"4"}\n'


def test_spilled_output_and_exit_code_survive_sigkill(kernel_factory, tmp_path):
    state = tmp_path / "state"
    first = kernel_factory(state_dir=state)
    client = papa.Papa(first.port_or_path)
    writer = "import sys\nfor n in range(20000): print(n, flush=True)\nsys.exit(3)"
    # The client has no spill argument (papa's signature): send the line.
    client.connection.command(
        ["m", "p", "writer", "bufsize=4k", "spill=1", sys.executable, "-c", writer]
    )
    watcher = client.watch_processes("writer")
    first_batch = watcher.read()[0]  # received, never acknowledged
    assert first_batch
    client.close()
    first.kill()
    second = kernel_factory(state_dir=state)
    client = papa.Papa(second.port_or_path)
    try:
        out, _, closed = read_all(client.watch_processes("writer"))
    finally:
        client.close()
    assert closed == {"writer": 3}
    assert out.decode().split() == [str(n) for n in range(20000)]
