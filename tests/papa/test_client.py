"""The client library against our kernel: values, sockets, processes, watchers."""

import select
import socket
import sys
import textwrap

import pytest

import papa

from .conftest import DEADLINE_SECONDS, pid_alive, read_all, wait_for

PYTHON = sys.executable


def test_public_names_and_star_import():
    namespace = {}
    exec("from papa import *", namespace)
    for name in (
        "Papa",
        "Watcher",
        "Error",
        "ProcessOutput",
        "PIPE",
        "STDOUT",
        "DEVNULL",
    ):
        assert name in namespace
    assert issubclass(papa.Error, RuntimeError)
    assert papa.ProcessOutput("a", 1.0, b"x").data == b"x"


def test_values(client):
    assert client.get("missing") is None
    client.set("a", "hello world")
    client.set("b", "Error: disk full")
    client.set("c", "two\nlines")
    client.set("d.x", "1")
    assert client.get("a") == "hello world"
    assert client.get("b") == "Error: disk full"
    assert client.get("c") == "two\nlines"
    assert client.list_values() == {
        "a": "hello world",
        "b": "Error: disk full",
        "c": "two\nlines",
        "d.x": "1",
    }
    assert client.list_values("d.*") == {"d.x": "1"}
    client.set("a")
    assert client.get("a") is None
    with pytest.raises(papa.Error, match="cannot remove all"):
        client.remove_values("*", "b")
    assert client.remove_values("b", "d.*") is True
    assert client.list_values() == {"c": "two\nlines"}


def test_inet_socket_is_idempotent_and_conflicts_are_errors(client):
    first = client.make_socket("web")
    assert first["family"] == "inet" and first["host"] == "127.0.0.1"
    assert first["port"] > 0 and first["fileno"] > 0
    assert client.make_socket("web") == first
    assert client.make_socket("web", port=first["port"]) == first
    with pytest.raises(papa.Error, match="already been created"):
        client.make_socket("web", backlog=50)
    assert client.list_sockets() == {"web": first}
    with pytest.raises(papa.Error, match="nope not found"):
        client.remove_sockets("nope")
    client.remove_sockets("web")
    assert client.list_sockets() == {}


def test_unix_and_datagram_sockets(client, tmp_path):
    path = str(tmp_path / "app.sock")
    unix = client.make_socket("app", path=path, umask=0o077)
    assert unix["family"] == "unix" and unix["path"] == path
    assert oct(__import__("os").stat(path).st_mode & 0o777) == "0o700"
    datagram = client.make_socket("udp", socket_type=socket.SOCK_DGRAM)
    assert datagram["type"] == "dgram" and datagram["port"] > 0
    with pytest.raises(papa.Error, match="absolute"):
        client.make_socket("bad", path="relative.sock")
    client.remove_sockets("app")
    assert not __import__("os").path.exists(path)


def test_interface_binds_to_a_device(client):
    info = client.make_socket("lo-only", interface="lo")
    assert info["interface"] == "lo" and info["host"] == "0.0.0.0"
    with socket.create_connection(("127.0.0.1", info["port"]), timeout=5):
        pass


def test_process_output_and_exit_code(client):
    watcher = client.make_process(
        "t",
        PYTHON,
        args=[
            "-c",
            "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)",
        ],
        watch_immediately=True,
    )
    out, err, closed = read_all(watcher)
    assert out == b"out\n" and err == b"err\n"
    assert closed == {"t": 3} and watcher.exit_code == {"t": 3}
    assert client.list_processes() == {}


def test_exit_by_signal_is_negative(client):
    info = client.make_process("sleeper", "/bin/sleep", args="60")
    with client.watch_processes("sleeper") as watcher:
        import os
        import signal

        os.kill(info["pid"], signal.SIGTERM)
        out, err, closed = read_all(watcher)
    assert closed == {"sleeper": -15}


def test_make_process_is_idempotent_and_lists_args_with_equals(client):
    info = client.make_process("s", "/bin/sleep", args=["60", "--opt=1"])
    again = client.make_process("s", "/bin/sleep", args=["60", "--opt=1"])
    assert again["pid"] == info["pid"] and info["running"] is True
    with pytest.raises(papa.Error, match="already been created"):
        client.make_process("s", "/bin/sleep", args="61")
    listed = client.list_processes("s")["s"]
    assert listed["args"] == "/bin/sleep 60 --opt=1"
    assert set(listed) == {"pid", "running", "started", "args"}


def test_environment_working_dir_and_newlines(client, tmp_path):
    script = textwrap.dedent(
        """
        import os
        print(repr(os.environ.get('EMPTY')), os.environ.get('A'), os.getcwd())
        """
    )
    watcher = client.make_process(
        "env",
        PYTHON,
        args=["-c", script],
        env={"EMPTY": "", "A": "x y\\"},
        working_dir=str(tmp_path),
        watch_immediately=True,
    )
    out, _, closed = read_all(watcher)
    assert out.decode() == f"'' x y\\ {tmp_path}\n"
    assert closed == {"env": 0}


def test_default_environment_is_empty_as_in_papa(client):
    watcher = client.make_process(
        "bare",
        PYTHON,
        args=["-c", "import os; print(sorted(os.environ))"],
        watch_immediately=True,
    )
    out, _, _ = read_all(watcher)
    # Python itself may add LC_CTYPE; nothing of the kernel's leaks in.
    assert "PATH" not in out.decode() and "HOME" not in out.decode()


def test_socket_substitution_and_fd_passing_to_a_serving_child(client):
    info = client.make_socket("srv")
    server = textwrap.dedent(
        """
        import socket, sys
        listener = socket.socket(fileno=int(sys.argv[1]))
        print('port', sys.argv[2], flush=True)
        connection, _ = listener.accept()
        connection.sendall(b'hello from the child')
        connection.close()
        """
    )
    client.make_process(
        "child",
        PYTHON,
        args=[
            "-c",
            server,
            "$(socket.srv.fileno)",
            "p=$(socket.srv.port):$(socket.srv.port)",
        ],
    )
    with socket.create_connection(
        ("127.0.0.1", info["port"]), timeout=DEADLINE_SECONDS
    ) as sock:
        received = b""
        while chunk := sock.recv(100):
            received += chunk
    assert received == b"hello from the child"
    out, _, closed = read_all(client.watch_processes("child"))
    assert out == f"port p={info['port']}:{info['port']}\n".encode()
    assert closed == {"child": 0}


def test_reuseport_serves_from_two_processes(client):
    info = client.make_socket("shared", reuseport=True)
    assert info["reuseport"] == "1" and "fileno" in info
    server = textwrap.dedent(
        """
        import socket, sys
        listener = socket.socket(fileno=int(sys.argv[1]))
        listener.settimeout(60)
        print(listener.getsockname()[1], flush=True)
        """
    )
    for name in ("one", "two"):
        watcher = client.make_process(
            name,
            PYTHON,
            args=["-c", server, "$(socket.shared.fileno)"],
            watch_immediately=True,
        )
        out, _, closed = read_all(watcher)
        assert closed == {name: 0}
        assert int(out) == info["port"]


def test_select_and_ready_tell_the_truth(client):
    client.make_process(
        "slow", PYTHON, args=["-c", "import time; time.sleep(0.3); print('late')"]
    )
    watcher = client.watch_processes("slow")
    readable, _, _ = select.select([watcher], [], [], DEADLINE_SECONDS)
    assert readable == [watcher]
    assert watcher.ready
    out, _, closed = read_all(watcher)
    assert out == b"late\n" and closed == {"slow": 0}
    assert not watcher.ready


def test_ready_is_false_while_nothing_waits(client):
    client.make_process("quiet", "/bin/sleep", args="60")
    with client.watch_processes("quiet") as watcher:
        assert watcher.ready is False
        assert select.select([watcher], [], [], 0.2)[0] == []


def test_readme_loop_ends_cleanly(client):
    watcher = client.make_process(
        "once", "/bin/echo", args="hi", watch_immediately=True
    )
    batches = []
    while watcher:
        out, err, closed = watcher.read()
        batches.append((out, err, closed))
    assert any(closed for _, _, closed in batches)
    assert not watcher.read()


def test_unacknowledged_output_is_redelivered(kernel, client):
    client.make_process("talker", "/bin/sh", args=["-c", "echo one; exec sleep 60"])
    first = client.watch_processes("talker")
    out, _, _ = first.read()
    assert out[0].data == b"one\n"
    first.connection.close()  # vanish without acknowledging
    second = papa.Papa(kernel.port_or_path).watch_processes("talker")
    again, _, _ = second.read()
    assert again == out  # same records, same timestamps
    second.acknowledge()
    second.close()
    third = papa.Papa(kernel.port_or_path).watch_processes("talker")
    assert not third.ready or third.read()[0] == []
    third.close()


def test_overflow_keeps_the_newest_output(client):
    writer = "import sys\nfor i in range(2000): sys.stdout.write('%05d\\n' % i); sys.stdout.flush()"
    client.make_process("burst", PYTHON, args=["-c", writer], bufsize=1000)
    wait_for(
        lambda: not client.list_processes("burst")["burst"]["running"], message="exit"
    )
    watcher = client.watch_processes("burst")
    chunks, closed = [], {}
    while watcher:
        batch = watcher.read()
        chunks.extend(item.data for item in batch[0])
        closed.update((item.name, item.data) for item in batch[2])
    everything = b"".join(b"%05d\n" % i for i in range(2000))
    out = b"".join(chunks)
    assert closed == {"burst": 0}
    assert everything.endswith(out) and out.endswith(b"01999\n")
    # Whole oldest chunks were dropped to fit 1000 bytes; only a single chunk
    # bigger than the budget is kept whole (papa's rule).
    assert len(out) <= 1000 or len(chunks) == 1
    assert len(out) < len(everything) or len(chunks) == 1


def test_spill_loses_nothing(client):
    # The client has no spill argument (papa's signature): send the line.
    code = "import sys\nfor i in range(20000): sys.stdout.write('%06d\\n' % i); sys.stdout.flush()"
    reply = client.connection.command(
        ["m", "p", "spiller", "bufsize=1k", "spill=1", PYTHON, "-c", code]
    )
    assert reply.startswith("spiller pid=")
    wait_for(
        lambda: not client.list_processes("spiller")["spiller"]["running"],
        message="exit",
    )
    out, _, closed = read_all(client.watch_processes("spiller"))
    assert closed == {"spiller": 0}
    assert out == b"".join(b"%06d\n" % i for i in range(20000))


def test_removed_chatty_child_keeps_running(client, tmp_path):
    counter = tmp_path / "count"
    chatty = textwrap.dedent(
        f"""
        import os, sys, time
        i = 0
        while True:
            i += 1
            print('line', i, flush=True)
            if i % 50 == 0:
                with open({str(counter)!r} + '.new', 'w') as f:
                    f.write(str(i))
                os.replace({str(counter)!r} + '.new', {str(counter)!r})
            time.sleep(0.001)
        """
    )

    def count() -> int:
        try:
            return int(counter.read_text())
        except (OSError, ValueError):
            return 0

    info = client.make_process("chatty", PYTHON, args=["-c", chatty], bufsize=100)
    wait_for(count, message="output")
    client.remove_processes("chatty")
    seen = count()
    wait_for(lambda: count() > seen + 500, message="child writes on after remove")
    assert pid_alive(info["pid"])
    assert "chatty" in client.list_processes()  # listed until it ends


def test_removing_a_finished_process_drops_it(client):
    client.make_process("done", "/bin/true")
    wait_for(
        lambda: not client.list_processes("done")["done"]["running"], message="exit"
    )
    client.remove_processes("done")
    assert client.list_processes() == {}


def test_exit_if_idle_through_the_client(kernel):
    client = papa.Papa(kernel.port_or_path)
    client.set("x", "1")
    assert client.exit_if_idle() is False
    client.set("x")
    assert client.exit_if_idle() is True
    client.close()
    assert kernel.process.wait(DEADLINE_SECONDS) == 0


def kernel_threads(kernel) -> int:
    status = open(f"/proc/{kernel.process.pid}/status").read()
    return int(status.split("Threads:")[1].split()[0])


def test_two_hundred_children_without_two_hundred_threads(kernel, client):
    before = kernel_threads(kernel)
    for index in range(200):
        client.make_process(f"idle{index:03d}", "/bin/sleep", args="120")
    listed = client.list_processes("idle*")
    assert len(listed) == 200
    assert all(info["running"] for info in listed.values())
    # The loop's own helpers (libuv's resolver pool) do not grow with children.
    assert kernel_threads(kernel) == before <= 5


def test_rlimits_uid_and_inherited_descriptors(client):
    import json
    import os
    import shutil

    client.make_socket("held")
    probe = (
        "import json, os, resource;"
        "print(json.dumps([resource.getrlimit(resource.RLIMIT_NOFILE), os.getuid(),"
        " os.getgid(), sorted(int(fd) for fd in os.listdir('/proc/self/fd'))]))"
    )
    user = {}
    python = PYTHON
    if os.getuid() == 0:
        # Another user cannot always read our venv: use the system Python.
        python = shutil.which("python3", path="/usr/bin:/bin") or PYTHON
        user = {"uid": "nobody"}
    watcher = client.make_process(
        "probe",
        python,
        args=["-c", probe],
        rlimits={"NOFILE": 64},
        watch_immediately=True,
        **user,
    )
    out, err, closed = read_all(watcher)
    assert closed == {"probe": 0}, err
    limits, uid, gid, descriptors = json.loads(out)
    assert limits == [64, 64]
    if user:
        import pwd

        entry = pwd.getpwnam("nobody")
        assert (uid, gid) == (entry.pw_uid, entry.pw_gid)
    # stdin, stdout, stderr, the managed socket and listdir's own descriptor:
    # none of the kernel's connections or other children's pipes leak in.
    socket_fd = client.list_sockets()["held"]["fileno"]
    assert socket_fd in descriptors
    assert len(set(descriptors) - {0, 1, 2, socket_fd}) == 1


def test_an_rlimit_above_the_hard_limit_is_a_clear_error(client):
    # Above fs.nr_open: refused even to root.
    with pytest.raises(papa.Error, match="rlimits"):
        client.make_process("toohigh", "/bin/true", rlimits={"NOFILE": 10**9})


def test_default_path_and_timeout_setters(unix_kernel, monkeypatch):
    monkeypatch.setattr(
        papa.Papa, "_default_port_or_path", papa.Papa._default_port_or_path
    )
    monkeypatch.setattr(
        papa.Papa, "_default_connection_timeout", papa.Papa._default_connection_timeout
    )
    papa.set_default_path(unix_kernel.address)
    papa.set_default_connection_timeout(5)
    with papa.Papa() as client:
        assert client.location == unix_kernel.address
        assert client.connection_timeout == 5
        client.set("via", "unix")
        assert client.get("via") == "unix"
        client.set("via")
    with pytest.raises(papa.Error, match="absolute"):
        papa.Papa("relative.sock")


def test_capture_survives_one_stream_closing(client):
    code = "import os, sys, time; os.close(1); time.sleep(0.1); sys.stderr.write('still here')"
    watcher = client.make_process(
        "halfclosed", PYTHON, args=["-c", code], watch_immediately=True
    )
    out, err, closed = read_all(watcher)
    assert err == b"still here" and closed == {"halfclosed": 0}


def test_a_tcp_watcher_that_leaves_is_noticed(kernel, client):
    info = client.make_process("watched", "/bin/sleep", args="60")
    watcher = papa.Papa(kernel.port_or_path).watch_processes("watched")
    assert watcher.ready is False
    watcher.connection.close()  # TCP FIN, no acknowledgement pending
    import os
    import signal

    os.kill(info["pid"], signal.SIGKILL)
    wait_for(
        lambda: not client.list_processes("watched")["watched"]["running"],
        message="exit",
    )
    client.remove_processes("watched")
    # exit-if-idle waits for every other connection: it can only exit if the
    # kernel noticed that the watcher's connection is gone.
    assert client.exit_if_idle() is True
    client.close()
    assert kernel.process.wait(DEADLINE_SECONDS) == 0


def test_a_second_watcher_ends_when_the_first_consumes_the_exit(kernel, client):
    client.make_process("shared", "/bin/sleep", args="0.3")
    second = papa.Papa(kernel.port_or_path).watch_processes("shared")
    first = client.watch_processes("shared")
    result = read_all(first)
    assert result[2] == {"shared": 0}
    # The second watcher may or may not have seen the records; it must end.
    read_all(second)
    assert not second
