"""``zeopack`` against our runzeo and real ZEO 6.2's, and its command line
side by side with real ZEO's ``zeopack``."""

import subprocess
from pathlib import Path

import pytest
from ZODB.POSException import POSKeyError
from ZODB.tests.MinPO import MinPO
from ZODB.tests.StorageTestBase import zodb_pickle
from ZODB.utils import z64

from tests.support import PYTHON, free_port, our_env, peer_env, require_peer
from tests.zeo.client.test_basic import commit_record

#: The console script setup.py installs beside this interpreter.
ZEOPACK = Path(PYTHON).parent / "zeopack"


def zeopack(*arguments, timeout=120):
    return subprocess.run(
        [str(ZEOPACK), *arguments],
        capture_output=True,
        text=True,
        env=our_env(),
        timeout=timeout,
    )


def three_revisions(storage):
    """The root written three more times; return (its oid, those tids).

    The root, because a pack with garbage collection drops what the root
    does not reach (and FileStorage's pack fails without a root).
    """
    oid = z64
    try:
        serial = storage.load(oid)[1]
    except POSKeyError:
        serial = z64
    tids = []
    for value in range(3):
        serial = commit_record(storage, oid, serial, zodb_pickle(MinPO(value)))
        tids.append(serial)
    return oid, tids


def test_zeopack_drops_old_revisions(start_server, client_factory):
    server = start_server(msgpack=True)
    storage = client_factory(server.addr)
    oid, tids = three_revisions(storage)
    assert len(storage.history(oid, 10)) == 3

    # -d 1: the revisions are younger than a day, nothing goes.
    result = zeopack("-d", "1", f"127.0.0.1:{server.port}")
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert len(storage.history(oid, 10)) == 3
    assert storage.loadSerial(oid, tids[0])

    result = zeopack(f"127.0.0.1:{server.port}:1")
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert [entry["tid"] for entry in storage.history(oid, 10)] == [tids[-1]]
    with pytest.raises(POSKeyError):
        storage.loadSerial(oid, tids[0])
    # A client with an empty cache: this one still holds the old revisions
    # (another process packed; ZEO's clients keep them too, USER_ASKS 3).
    fresh = client_factory(server.addr)
    assert fresh.loadBefore(oid, tids[1]) is None  # packed away
    assert fresh.load(oid)[1] == tids[-1]


def test_zeopack_on_a_unix_socket_by_every_spelling(
    start_server, client_factory, tmp_path
):
    path = tmp_path / "zeo.sock"
    server = start_server(msgpack=False, unix_socket=path)
    storage = client_factory(server.addr)
    for spelling in (["-U", str(path), "-S", "1"], ["-u", f"{path}:1"], [str(path)]):
        oid, tids = three_revisions(storage)
        result = zeopack(*spelling)
        assert (result.returncode, result.stderr) == (0, ""), spelling
        assert len(storage.history(oid, 10)) == 1, spelling


def test_zeopack_unknown_storage_and_dead_address_fail_with_reasons(
    start_server, client_factory
):
    server = start_server(msgpack=True)
    dead = free_port()
    result = zeopack(
        "--connect-timeout", "2", f"127.0.0.1:{server.port}:nosuch", f"127.0.0.1:{dead}"
    )
    assert result.returncode == 1
    assert "unknown storage" in result.stderr
    assert "Connection refused" in result.stderr
    assert result.stderr.endswith(
        "Error:\nCannot connect to any of the configured ZEO servers.\n"
    )

    # One reachable server is enough for success, as in ZEO.
    storage = client_factory(server.addr)
    oid, _ = three_revisions(storage)
    result = zeopack(
        "--connect-timeout", "2", f"127.0.0.1:{dead}", f"127.0.0.1:{server.port}"
    )
    assert result.returncode == 0, result.stderr
    assert "Couldn't connect to: (('127.0.0.1', " in result.stderr
    assert len(storage.history(oid, 10)) == 1


# Command lines that fail before any connection, so real ZEO answers fast.
COMMAND_LINES = [
    [],
    ["-h", "localhost"],
    ["a:1:b:c"],
    ["justahost"],
    ["localhost:notaport"],
    ["-t", "1:2:3:4", "localhost:1"],
    ["-u", "a:b:c"],
    ["--days", "many", "localhost:1"],
    ["--no-such-option"],
]


@pytest.mark.interop
@pytest.mark.parametrize("arguments", COMMAND_LINES, ids=" ".join)
def test_command_line_errors_exit_as_real_zeopack(arguments):
    peer = require_peer("zeo")
    real = subprocess.run(
        [PYTHON, str(peer / "bin" / "zeopack"), *arguments],
        capture_output=True,
        text=True,
        env=peer_env(peer),
        timeout=60,
    )
    ours = zeopack(*arguments)
    assert ours.returncode == real.returncode, (real.stderr, ours.stderr)
    if real.returncode == 1:
        assert real.stderr.startswith("Error:\n")
        assert ours.stderr.startswith("Error:\n")
        assert real.stderr.splitlines()[1].split(":")[0] in ours.stderr
    if real.returncode == 0:  # the help
        assert "host:port[:name]" in ours.stdout


def test_dash_w_waits_for_a_server_that_is_not_up_yet(impl, tmp_path, client_factory):
    import transaction
    import ZODB
    from ZODB.FileStorage import FileStorage

    from tests.zeo.client.conftest import Server

    data_fs = tmp_path / "Data.fs"
    database = ZODB.DB(FileStorage(str(data_fs)))  # three revisions of the root
    with database.transaction() as connection:
        connection.root()["value"] = 0
    for value in (1, 2):
        with database.transaction() as connection:
            connection.root()["value"] = value
    database.close()
    transaction.abort()
    server = Server(impl, tmp_path / "late", msgpack=True, data_fs=data_fs)
    address = f"127.0.0.1:{server.port}"
    # Without -W the (tiny) connect timeout applies...
    assert zeopack("--connect-timeout", "0.1", address).returncode == 1
    # ...with it, zeopack waits however long the server takes to come up.
    waiting = subprocess.Popen(
        [str(ZEOPACK), "-W", "--connect-timeout", "0.1", address],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=our_env(),
    )
    try:
        server.start()
        _, errors = waiting.communicate(timeout=120)
        assert waiting.returncode == 0, errors
        storage = client_factory(server.addr)
        assert len(storage.history(z64, 10)) == 1
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()
        server.stop()
