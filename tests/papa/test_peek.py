"""``peek NAME [LINES]`` against a real kernel: the last lines of a
process's output, stdout and stderr as they came, with nothing consumed
(a watcher still gets everything), output already acknowledged shown too,
every line returned exactly (escaped on the wire), and bad requests refused
with a clear error."""

import pytest

import papa
from tests.papa.conftest import PYTHON, RawSession, read_all, wait_for

# Prints 1..50, hostile lines, then exits 0.  (Lines of stdout and stderr
# come in the order the kernel reads its two pipes, not quite as printed.)
TALKER = """
for n in range(1, 51):
    print(n, flush=True)
print("> not a prompt", flush=True)
print("Error: not an error \\\\ with a backslash", flush=True)
"""
LAST = ["> not a prompt", "Error: not an error \\ with a backslash"]


def ended(client, name):
    return not client.list_processes(name)[name]["running"]


def test_peek_shows_the_last_lines_and_consumes_nothing(client):
    client.make_process("talker", PYTHON, args=["-c", TALKER])
    wait_for(lambda: ended(client, "talker"), message="the talker to end")
    assert client.peek("talker", 4) == ["49", "50", *LAST]
    assert client.peek("talker") == [str(n) for n in range(33, 51)] + LAST
    assert client.peek("talker", 0) == []
    # Nothing was consumed: a watcher gets all of it, and the exit code.
    out, err, closed = read_all(client.watch_processes("talker"))
    assert out.splitlines()[-2:] == [line.encode() for line in LAST]
    assert err == b"" and closed == {"talker": 0}


def test_peek_shows_stderr_too(client):
    client.make_process("grumbler", "/bin/sh", args=["-c", "echo oops >&2"])
    wait_for(lambda: ended(client, "grumbler"), message="the grumbler to end")
    assert client.peek("grumbler") == ["oops"]


def test_peek_shows_output_a_watcher_acknowledged(client):
    client.make_process(
        "echo", "/bin/sh", args=["-c", "echo one; echo two; exec sleep 60"]
    )
    watcher = client.watch_processes("echo")
    seen = b""
    while seen.count(b"\n") < 2:
        out, _err, _closed = watcher.read()
        seen += b"".join(record.data for record in out)
        watcher.acknowledge()
    watcher.close()
    assert client.peek("echo") == ["one", "two"]
    client.cancel_processes("echo")


def test_bad_peeks_are_refused_with_the_reason(kernel, client):
    client.make_process("quiet", "/bin/sleep", args="60")
    assert client.peek("quiet") == []
    for words, reason in (
        (["nosuch"], "peek: no process named 'nosuch'"),
        (["quiet", "many"], "LINES must be a number from 0 to 1000, not 'many'"),
        (["quiet", "1001"], "LINES must be a number from 0 to 1000, not '1001'"),
    ):
        with pytest.raises(papa.Error, match=reason):
            client.peek(*words)
    session = RawSession(kernel.address)
    try:
        assert b"peek NAME [LINES]" in session.command("help peek")
        assert b"peek " in session.command("help")
        assert session.command("peek").startswith(b"Error: peek needs a process name")
    finally:
        session.close()
    client.cancel_processes("quiet")
