"""Real papa 1.0.6 against us, both ways.

The real papa package is only imported in subprocesses run with the peer's
PYTHONPATH (our package is also named ``papa``).
"""

import json
import subprocess
import sys
import textwrap

import pytest

import papa
from tests.conftest import peer_env

from .conftest import DEADLINE_SECONDS, wait_for

pytestmark = pytest.mark.interop

PEER_CLIENT_SCRIPT = textwrap.dedent(
    """
    import json, sys, select
    import papa
    assert papa.__file__.startswith(sys.argv[2]), papa.__file__
    port = int(sys.argv[1])
    result = {}
    with papa.Papa(port, connection_timeout=20) as p:
        p.set('a', 'hello world')
        result['get'] = p.get('a')
        result['missing'] = p.get('nothing')
        result['values'] = p.list_values()
        sock = p.make_socket('web')
        result['socket'] = sock
        result['sockets'] = p.list_sockets()
        result['again'] = p.make_socket('web')
        try:
            p.make_socket('web', backlog=77)
        except papa.Error as exc:
            result['conflict'] = str(exc)
        watcher = p.make_process(
            'echo', sys.executable,
            args=['-c', 'import sys; print("out", sys.argv[1]); sys.stderr.write("err"); sys.exit(4)',
                  '$(socket.web.port)'],
            watch_immediately=True)
        out, err, closed = b'', b'', {}
        while True:
            watcher.acknowledge()  # the kernel sends nothing before the ack
            select.select([watcher], [], [], 20)
            reply = watcher.read()
            if not reply:
                break
            out += b''.join(item.data for item in reply[0])
            err += b''.join(item.data for item in reply[1])
            closed.update((item.name, item.data) for item in reply[2])
        result['out'] = out.decode()
        result['err'] = err.decode()
        result['closed'] = closed
        result['exit_code'] = watcher.exit_code
        info = p.make_process('sleeper', '/bin/sleep', args='30')
        result['sleeper'] = info
        result['processes'] = p.list_processes()
        watcher = p.watch_processes('sleep*')
        result['watcher_true'] = bool(watcher)
        watcher.close()
        p.remove_processes('sleeper')
        import os, signal
        os.kill(info['pid'], signal.SIGKILL)
        p.remove_sockets('web')
        p.remove_values('a')
        import time
        for attempt in range(400):  # the SIGKILLed sleeper must be seen gone
            result['idle'] = p.exit_if_idle()
            if result['idle']:
                break
            time.sleep(0.05)
    print(json.dumps(result))
    """
)


def test_real_papa_client_against_our_kernel(kernel, papa_peer, tmp_path):
    script = tmp_path / "peer_client.py"
    script.write_text(PEER_CLIENT_SCRIPT)
    completed = subprocess.run(
        [sys.executable, str(script), str(kernel.port_or_path), str(papa_peer)],
        env=peer_env(papa_peer),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["get"] == "hello world"
    assert result["missing"] is None
    assert result["values"] == {"a": "hello world"}
    port = result["socket"]["port"]
    assert result["socket"]["family"] == "inet" and port > 0
    assert result["sockets"] == {"web": result["socket"]}
    assert result["again"] == result["socket"]
    assert result["conflict"].startswith("Socket for web has already been created")
    assert result["out"] == f"out {port}\n"
    assert result["err"] == "err"
    assert result["closed"] == {"echo": 4}
    assert result["exit_code"] == {"echo": 4}
    assert result["sleeper"]["running"] is True
    assert result["processes"]["sleeper"]["args"] == "/bin/sleep 30"
    assert result["watcher_true"] is True
    assert result["idle"] is True
    assert kernel.process.wait(DEADLINE_SECONDS) == 0


def test_our_client_against_a_real_papa_kernel(kernel_factory, papa_peer):
    kernel = kernel_factory(peer=papa_peer)
    client = papa.Papa(kernel.port_or_path, connection_timeout=DEADLINE_SECONDS)
    try:
        assert client.connection.escapes is False  # real papa has no extension
        client.set("a", "x y")
        assert client.get("a") == "x y"
        assert client.list_values() == {"a": "x y"}
        info = client.make_socket("web")
        assert client.list_sockets() == {"web": info}
        watcher = client.make_process(
            "t",
            sys.executable,
            args=[
                "-c",
                "import os, sys; print(repr(os.environ['E']), sys.argv[1]); sys.exit(2)",
                "--port=$(socket.web.port)",
            ],
            env={"E": ""},
            watch_immediately=True,
        )
        out, closed = b"", {}
        while watcher:
            batch = watcher.read()
            out += b"".join(item.data for item in batch[0])
            closed.update((item.name, item.data) for item in batch[2])
        assert out == f"'' --port={info['port']}\n".encode()
        assert closed == {"t": 2}
        client.make_process("s", "/bin/sleep", args=["30", "--opt=1"])
        listed = client.list_processes("s")["s"]
        assert listed["args"] == "/bin/sleep 30 --opt=1"
        with pytest.raises(papa.Error, match="newlines"):
            client.make_process("n", sys.executable, args=["-c", "print(1)\nprint(2)"])
        with pytest.raises(papa.Error, match="not found"):
            client.remove_sockets("nope")
        with client.watch_processes("s") as sleeper:
            assert sleeper.ready is False
    finally:
        client.close()
    wait_for(lambda: kernel.listed_pids(), message="listing")
