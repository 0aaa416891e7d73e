"""zeo.server(): an ad-hoc server in a thread or in a child process."""

import socket

import pytest

import zeo

from .conftest import run_peer_script

SCRIPT = """
import json, transaction, ZEO
db = ZEO.DB({address!r})
with db.transaction() as connection:
    connection.root()["answer"] = 42
with db.transaction() as connection:
    value = connection.root()["answer"]
db.close()
print("RESULT " + json.dumps(value))
"""


def refuses_connections(address):
    try:
        socket.create_connection(address, timeout=10).close()
    except OSError:
        return True
    return False


@pytest.mark.parametrize("threaded", [True, False], ids=["thread", "process"])
def test_adhoc_server_serves_a_real_zeo_client(threaded, zeo_peer, tmp_path):
    address, stop = zeo.server(path=str(tmp_path / "Data.fs"), threaded=threaded)
    try:
        assert address[0] == "127.0.0.1"
        assert run_peer_script(zeo_peer, SCRIPT.format(address=address)) == 42
    finally:
        stop()
    assert refuses_connections(address)
    # The FileStorage was closed: it can be opened again.
    from ZODB.FileStorage import FileStorage

    FileStorage(str(tmp_path / "Data.fs")).close()


def test_adhoc_in_memory_server_with_zeo_options(zeo_peer):
    address, stop = zeo.server(zeo_conf={"msgpack": False, "transaction_timeout": 9})
    try:
        with socket.create_connection(address, timeout=30) as connection:
            assert connection.recv(6) == b"\x00\x00\x00\x02Z5"
        assert run_peer_script(zeo_peer, SCRIPT.format(address=address)) == 42
    finally:
        stop()
