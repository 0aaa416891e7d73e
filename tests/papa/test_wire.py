"""A raw socket session with a real kernel: papa's bytes, and bad input survived."""

import os
import stat

import pytest

from .conftest import RawSession, can_connect, wait_for


def test_banner_prompt_and_blank_lines(kernel):
    session = kernel.raw()
    assert session.banner == b'Papa is home. Type "help" for commands.\n> '
    assert session.command("") == b"> "
    assert session.command("   ") == b"> "
    assert session.command("set a hello  world") == b"\n> "
    assert session.command("get a") == b"hello world\n> "
    assert session.command("g nothing") == b"\n> "
    assert session.command("l v") == b"a hello world\n> "
    session.close()


def test_errors_leave_the_connection_and_kernel_usable(kernel):
    session = kernel.raw()
    assert session.command("frobnicate") == b'Error: Unknown command "frobnicate"\n> '
    assert session.command("e") == b'Error: You cannot abbreviate "exit-if-idle"\n> '
    assert session.command("list") == (
        b'Error: "list" must be followed by one of: processes, sockets, values\n> '
    )
    assert session.command("make process") == b"Error: Process requires a name\n> "
    assert session.command("m p x rlimit.nofile=lots sh").startswith(
        b"Error: The rlimit"
    )
    assert session.command("m p x /no/such/program").startswith(
        b"Error: Bad command - "
    )
    assert session.command("m p x uid=no-such-user-zz sh").startswith(
        b"Error: 'no-such"
    )
    assert session.command("m s s1 port=notaport").startswith(
        b"Error: The socket option"
    )
    assert session.command("\xff\xfe garbage").startswith(b"Error: Unknown command")
    assert session.command("r v *") == b"Error: You cannot remove all variables\n> "
    assert session.command("r v * x") == b"Error: You cannot remove all variables\n> "
    assert session.command("w p nothing") == b"Error: nothing not found\n> "
    assert session.command("set a 1") == b"\n> "
    assert session.command("get a") == b"1\n> "
    session.close()
    assert can_connect(kernel.address)


def test_an_oversized_line_is_refused_and_the_connection_lives(kernel):
    session = kernel.raw()
    session.send(b"set big " + b"x" * (2 * 1024 * 1024) + b"\n")
    reply = session.read_until(b"\n> ")
    assert reply.startswith(b"Error: Line too long")
    assert session.command("get big") == b"\n> "
    session.close()


def test_help_lists_every_command(kernel):
    session = kernel.raw()
    reply = session.command("help").decode()
    for word in ("make socket", "make process", "watch processes", "exit-if-idle"):
        assert word in reply
    assert session.command("help nope") == b'Unknown command "nope"\n> '
    assert b"$(socket.NAME.port)" in session.command("help m p")
    session.close()


def test_quit_says_ok_and_closes(kernel):
    session = kernel.raw()
    session.send(b"quit\n")
    assert session.read_to_eof() == b"ok\n"


def test_watch_stream_and_acknowledgement_bytes(kernel):
    session = kernel.raw()
    line = session.command("m p t /bin/sh -c echo\\ hello").decode()
    assert line.startswith("t pid=")
    assert " args=/bin/sh -c echo hello" in line
    session.send(b"watch processes t\n")
    data = session.read_until(b"\n] ")
    assert data.startswith(b"Watching 1\n")
    records = data[len(b"Watching 1\n") :]
    # The output and the exit may come in one batch or two.
    if not records.startswith(b"out:t:") or b"closed:" not in records:
        session.send(b"-\n")
        records += session.read_until(b"\n] ")
    header, _, rest = records.partition(b"\n")
    kind, name, timestamp, length = header.split(b":")
    assert (kind, name, length) == (b"out", b"t", b"6")
    float(timestamp)
    assert rest.startswith(b"hello\n\n")
    assert b"closed:t:" in rest and rest.endswith(b":0\n] ")
    session.send(b"-\n")
    assert session.read_until(b"> ") == b"Nothing left to watch\n> "
    assert session.command("l p") == b"\n> "
    session.close()


def test_q_stops_watching_and_keeps_unacknowledged_nothing(kernel):
    session = kernel.raw()
    session.command("m p chatty /bin/sh -c echo\\ one;sleep\\ 30")
    session.send(b"w p chatty\n")
    session.read_until(b"\n] ")
    session.send(b"q\n")
    assert session.read_until(b"> ") == b"Stopped watching\n> "
    assert b"running=True" in session.command("l p chatty")
    session.close()


def test_unix_socket_is_private_and_foreign_files_are_never_removed(
    kernel_factory, tmp_path
):
    kernel = kernel_factory(unix=True)
    mode = stat.S_IMODE(os.stat(kernel.address).st_mode)
    assert mode == 0o600
    session = RawSession(kernel.address)
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    reply = session.command(f"make socket s path={precious}")
    assert reply.startswith(b"Error: ") and b"not a socket" in reply
    assert precious.read_text() == "keep me"
    session.close()


def test_kernel_refuses_to_replace_a_regular_file(tmp_path):
    import subprocess
    import sys

    from .conftest import SRC

    target = tmp_path / "not-a-socket"
    target.write_text("data")
    result = subprocess.run(
        [sys.executable, "-m", "papa", "-u", str(target)],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "not a socket" in result.stderr
    assert target.read_text() == "data"


def test_exit_if_idle_both_ways(kernel):
    session = kernel.raw()
    session.command("set busy 1")
    assert session.command("exit-if-idle") == b"not idle\n> "
    session.command("set busy")
    session.send(b"exit-if-idle\n")
    assert session.read_to_eof() == b"Exiting papa!\n> "
    session.close()
    assert kernel.process.wait(20) == 0
    wait_for(lambda: not can_connect(kernel.address), message="kernel gone")


def test_exit_waits_for_other_connections(kernel):
    other = kernel.raw()
    session = kernel.raw()
    session.send(b"exit-if-idle\n")
    assert session.read_to_eof() == b"Exiting papa!\n> "
    assert other.command("get x") == b"\n> "
    assert kernel.process.poll() is None
    other.close()
    assert kernel.process.wait(20) == 0


@pytest.mark.parametrize(
    "line", [b"\x00\x01\x02", b"m", b"make socket", b"w p", b"set"]
)
def test_garbage_gets_an_error(kernel, line):
    session = kernel.raw()
    assert session.command(line).startswith(b"Error: ")
    assert session.command("get a") == b"\n> "
    session.close()


def test_random_garbage_never_takes_the_kernel_down(kernel):
    import random

    generator = random.Random(20202)
    words = [
        "make",
        "m",
        "p",
        "s",
        "process",
        "socket",
        "list",
        "l",
        "w",
        "remove",
        "r",
        "set",
        "get",
        "help",
        "protocol",
        "escapes",
        "$(socket.",
        ")",
        "=",
        "*",
        "env.",
        "rlimit.",
        "bufsize=",
        "port=",
        "path=",
        "\\",
        "\\n",
        "x",
    ]
    session = kernel.raw()
    for _ in range(300):
        if generator.random() < 0.5:
            line = " ".join(
                generator.choice(words) for _ in range(generator.randint(1, 6))
            )
            data = line.encode()
        else:
            data = bytes(
                generator.randrange(256) for _ in range(generator.randint(1, 40))
            )
            data = data.replace(b"\n", b" ")
        if data.strip().lower().startswith((b"q", b"exit-if-idle", b"w")):
            continue  # quitting or watching are answered differently
        reply = session.command(data)
        assert reply.endswith(b"> ")
    session.close()
    probe = kernel.raw()
    assert probe.command("get nothing") == b"\n> "
    probe.close()
