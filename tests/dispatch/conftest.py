"""Fixtures for the dispatch tests: zeo servers (in a thread or as a runzeo
process), and a runner for the DoJobber comparison driver."""

import functools
import json
import subprocess
from pathlib import Path

import pytest

from dispatch.state.database import dispatch_state
from tests.conftest import PYTHON, free_port, peer_env, require_peer
from tests.support import RunzeoProcess as _RunzeoProcess
from tests.support import wait_until as _wait_until

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "compare_driver.py"
# Generous: a cold interpreter importing ZODB on a loaded 2-core CI machine.
START_TIMEOUT = 60
RUN_TIMEOUT = 120

#: ``wait_until(condition, timeout=START_TIMEOUT, message=...)``, for things
#: no event announces, like another process's port.
wait_until = functools.partial(_wait_until, timeout=START_TIMEOUT)


def wait_for_state(database, condition, timeout=START_TIMEOUT, what="a state"):
    """Wait until ``condition(dispatch)`` is true, each time on a fresh
    transaction of *database*; returns its value."""

    def check():
        with dispatch_state(database) as state:
            return condition(state)

    return wait_until(check, timeout=timeout, message=what)


def run_driver(engine, graph, options=None):
    """Run compare_driver.py on *engine* ('ours' or 'peer'): (report, stderr lines).

    DoJobber's import-time notices about missing graphviz/ImageMagick
    (lines starting with ``**``) are dropped: they are not engine output.
    """
    env = None
    if engine == "peer":
        env = peer_env(require_peer("dojobber"))
    completed = subprocess.run(
        [PYTHON, str(DRIVER), engine, graph, json.dumps(options or {})],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=env,
        cwd=HERE,
    )
    assert completed.returncode == 0, completed.stderr
    lines = [
        line for line in completed.stderr.splitlines() if not line.startswith("** ")
    ]
    return json.loads(completed.stdout), lines


@pytest.fixture
def zeo_database(storage_conf):
    """A ZODB DB on our zeo server (in a thread) serving ``storage_conf``: a
    FileStorage in tmp_path, or RelStorage with ``--storage relstorage``."""
    import zeo

    address, stop = zeo.server(storage_conf=storage_conf)
    database = zeo.DB(address)
    database.address = address
    try:
        yield database
    finally:
        database.close()
        stop()


class RunzeoProcess(_RunzeoProcess):
    """A real ``python -m zeo.runzeo`` process serving *storage_conf* (a
    FileStorage in *directory* by default); started at once."""

    def __init__(self, directory, storage_conf=None):
        port = free_port()
        data_path = directory / "Data.fs"
        if storage_conf is None:
            storage_conf = f"<filestorage 1>\n  path {data_path}\n</filestorage>\n"
        super().__init__(
            directory,
            f"<zeo>\n  address 127.0.0.1:{port}\n</zeo>\n{storage_conf}",
            ("127.0.0.1", port),
            data_path=data_path,
            start_timeout=START_TIMEOUT,
            stop_timeout=START_TIMEOUT,
        )
        self.start()


@pytest.fixture
def runzeo(tmp_path, storage_conf):
    """A runzeo process serving ``storage_conf`` (see zeo_database)."""
    server = RunzeoProcess(tmp_path, storage_conf)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def direct_storage(request, storage_backend):
    """A storage opened in this process, as ``dispatch.direct`` opens one: a
    MappingStorage, or with ``--storage relstorage`` a RelStorage on a new
    database of the session's PostgreSQL (the DB closes it)."""
    if storage_backend != "relstorage":
        from ZODB.MappingStorage import MappingStorage

        return MappingStorage()
    import ZODB.config

    from tests.support.postgresql import relstorage_config

    cluster = request.getfixturevalue("postgresql")
    dsn = cluster.dsn(cluster.create_database("direct"))
    return ZODB.config.storageFromString(
        "%import relstorage\n" + relstorage_config(dsn)
    )
