"""A real ZEO client survives a server restart and verifies its cache from
the invalidation queue, which the restarted server seeded from FileStorage."""

import subprocess
import textwrap

import pytest
import ZODB
from ZODB.FileStorage import FileStorage

from tests.conftest import PYTHON, peer_env

from .conftest import wait_until

pytestmark = pytest.mark.interop

SCRIPT = """
import json, os, time
import transaction, ZEO

def wait_for(condition, what):
    deadline = time.monotonic() + 120
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)

db = ZEO.DB(("127.0.0.1", {port}), wait_timeout=120)
with db.transaction() as connection:
    connection.root()["value"] = 1
connection = db.open()
assert connection.root()["value"] == 1  # now in the client cache
transaction.abort()
open({ready!r}, "w").close()
wait_for(lambda: not db.storage.is_connected(), "never saw the server go")
wait_for(lambda: os.path.exists({restarted!r}), "never told of the restart")
wait_for(db.storage.is_connected, "never reconnected")
transaction.begin()
value = connection.root()["value"]
print("RESULT " + json.dumps(value))
db.close()
"""


def test_client_verifies_its_cache_after_a_restart(start_server, zeo_peer, tmp_path):
    data_path = tmp_path / "Data.fs"
    server = start_server(data_path=data_path)
    ready, restarted = tmp_path / "ready", tmp_path / "restarted"
    client = subprocess.Popen(
        [
            PYTHON,
            "-c",
            textwrap.dedent(
                SCRIPT.format(
                    port=server.port, ready=str(ready), restarted=str(restarted)
                )
            ),
        ],
        env=peer_env(zeo_peer),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(ready.exists, timeout=120, message="the client to cache the value")
        assert server.stop() == 0
        # While the server is down, the data changes behind the client's back.
        database = ZODB.DB(FileStorage(str(data_path)))
        with database.transaction() as connection:
            connection.root()["value"] = 2
        database.close()
        restarted_server = start_server(data_path=data_path, port=server.port)
        restarted.touch()
        output, errors = client.communicate(timeout=180)
    finally:
        if client.poll() is None:
            client.kill()
            client.communicate()
    assert client.returncode == 0, errors
    results = [line for line in output.splitlines() if line.startswith("RESULT ")]
    assert results == ["RESULT 2"]
    # Quick verification from the queue, not a dropped cache.
    restarted_server.wait_for_log("returning 1 invalidations up to tid")
