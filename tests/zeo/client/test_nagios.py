"""``zeo-nagios`` side by side with real ZEO 6.2's, against our runzeo and
real ZEO's: the same states, texts and performance data."""

import re
import socket
import subprocess
import threading
from pathlib import Path

import pytest
from ZODB.tests.MinPO import MinPO
from ZODB.tests.StorageTestBase import zodb_pickle
from ZODB.utils import z64

from tests.support import PYTHON, free_port, our_env, peer_env, require_peer
from tests.zeo.client.test_basic import commit_record

pytestmark = pytest.mark.interop

#: The console script setup.py installs beside this interpreter.
ZEO_NAGIOS = Path(PYTHON).parent / "zeo-nagios"


def ours(*arguments):
    return subprocess.run(
        [str(ZEO_NAGIOS), *arguments],
        capture_output=True,
        text=True,
        env=our_env(),
        timeout=60,
    )


def real(*arguments):
    peer = require_peer("zeo")
    return subprocess.run(
        [PYTHON, str(peer / "bin" / "zeo-nagios"), *arguments],
        capture_output=True,
        text=True,
        env=peer_env(peer),
        timeout=60,
    )


def both(*arguments):
    """(status, stdout) of real ZEO's check and of ours, in that order."""
    return [(r.returncode, r.stdout) for r in (real(*arguments), ours(*arguments))]


def test_states_and_metrics_match_real_zeo_nagios(start_server, client_factory):
    server = start_server(msgpack=True)
    address = f"127.0.0.1:{server.port}"
    empty = both(address)
    assert empty[0] == empty[1] == (1, "Empty storage '1'\n")

    storage = client_factory(server.addr)
    commit_record(storage, z64, z64, zodb_pickle(MinPO(1)))
    assert both(address) == [(0, "OK\n")] * 2

    # Gauges: one client is connected (the probes are not counted).
    metrics = both("-m", address)
    assert metrics[0] == metrics[1]
    assert metrics[1] == (0, "OK|active_txns=0\n| connections=1\n waiting=0\n")


def test_rates_from_a_status_file_shared_with_real_zeo(
    start_server, client_factory, tmp_path
):
    server = start_server(msgpack=False)
    address = f"127.0.0.1:{server.port}"
    storage = client_factory(server.addr)
    status_file = tmp_path / "zeo.status"
    serial = z64
    serial = commit_record(storage, z64, serial, zodb_pickle(MinPO(0)))
    first = real("-m", "-s", str(status_file), "-u", "seconds", address)
    assert first.returncode == 0
    assert "commits=" not in first.stdout  # no previous status: no rates yet
    for value in range(3):
        serial = commit_record(storage, z64, serial, zodb_pickle(MinPO(value)))
    second = ours("-m", "-s", str(status_file), "-u", "seconds", address)
    assert second.returncode == 0, second.stderr
    rates = dict(re.findall(r"(\w+)=([-\d.e+]+)", second.stdout))
    assert float(rates["commits"]) > 0
    assert float(rates["aborts"]) == 0
    assert set(rates) == {
        *("active_txns", "connections", "waiting", "aborts", "commits"),
        *("conflicts", "conflicts_resolved", "loads", "stores"),
    }
    # Real ZEO reads the file we wrote.
    third = real("-m", "-s", str(status_file), "-u", "hours", address)
    assert third.returncode == 0
    assert "commits=" in third.stdout


def test_dead_addresses_are_critical_as_in_real_zeo(tmp_path):
    refused = both(f"127.0.0.1:{free_port()}")
    assert refused[0] == refused[1]
    assert refused[1] == (2, "Can't connect [Errno 111] Connection refused\n")
    missing = both(str(tmp_path / "no.sock"))
    assert missing[0] == missing[1]
    assert missing[1][0] == 2


def test_a_peer_that_is_not_zeo_is_unknown_and_a_silent_one_critical():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def close_at_once():
            # The end at once, but what the client sent is read first:
            # closing with its bytes unread would reset the connection
            # (ECONNRESET, a CRITICAL) instead, depending on timing.
            connection, _ = listener.accept()
            with connection:
                connection.shutdown(socket.SHUT_WR)
                connection.settimeout(10)
                try:
                    while connection.recv(4096):
                        pass
                except OSError:
                    pass

        closer = threading.Thread(target=close_at_once)
        closer.start()
        result = ours(f"127.0.0.1:{port}")
        closer.join()
        assert result.returncode == 3
        assert result.stdout.startswith("UNKNOWN: is 127.0.0.1:")

        # Never accepted, never answered: the timeout makes it CRITICAL.
        result = ours("--timeout", "0.5", f"127.0.0.1:{port}")
        assert result.returncode == 2
        assert "timed out" in result.stdout


@pytest.mark.parametrize(
    "arguments", [[], ["a:1", "b:2"], ["-u", "weeks", "a:1"], ["host:notaport"]]
)
def test_bad_usage_is_unknown(arguments):
    result = ours(*arguments)
    assert result.returncode == 3
    assert result.stdout.startswith("UNKNOWN: ")
