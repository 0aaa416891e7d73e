"""Fixtures shared by every test package; the helpers live in
``tests.support`` (the names below stay importable from here)."""

import os
from pathlib import Path

import pytest

from tests.support import PEERS, PYTHON, ROOT, free_port, peer_env, require_peer

__all__ = ["PEERS", "PYTHON", "ROOT", "free_port", "peer_env", "require_peer"]

#: ``--storage`` values: what the servers of the conformance suites and of
#: the dispatch tests store in.
STORAGES = ("file", "relstorage")


def pytest_addoption(parser):
    parser.addoption(
        "--storage",
        choices=STORAGES,
        default=os.environ.get(
            "ZEOPAPA_STORAGE", os.environ.get("ZEOPAPA_CONFORMANCE_STORAGE", "file")
        ),
        help="what the zeo servers of tests/zeo/conformance and tests/dispatch "
        "store in: FileStorage (default) or RelStorage on a throwaway "
        "PostgreSQL (a database per storage)",
    )


@pytest.fixture
def zeo_peer() -> Path:
    """Real ZEO 6.2, importable only in subprocesses run with peer_env()."""
    return require_peer("zeo")


@pytest.fixture(scope="session")
def postgresql():
    """A real PostgreSQL cluster for the session (tests/support/postgresql.py):
    started on first use, stopped after the last test."""
    from tests.support.postgresql import start_cluster, stop_cluster

    cluster = start_cluster()
    yield cluster
    stop_cluster(cluster)


@pytest.fixture(scope="session")
def two_node_cluster(tmp_path_factory):
    """A second Slurm cluster of two nodes on loopback, ours for the session
    (tests/support/slurm_nodes.py); skipped when it cannot run here (failed
    instead under ZEOPAPA_REQUIRE_SLURM)."""
    from tests.support.slurm_nodes import TwoNodeCluster, why_not

    reason = why_not()
    if reason is not None:
        if os.environ.get("ZEOPAPA_REQUIRE_SLURM"):
            pytest.fail(f"ZEOPAPA_REQUIRE_SLURM is set but {reason}")
        pytest.skip(reason)
    cluster = TwoNodeCluster(tmp_path_factory.mktemp("slurm-nodes"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def storage_backend(request) -> str:
    """``--storage``'s value; a module overrides it to run tests of another
    package on RelStorage (tests/relstorage/test_dispatch_suite.py)."""
    return request.config.getoption("storage")


@pytest.fixture
def storage_conf(request, tmp_path, storage_backend) -> str:
    """The section of storage ``1`` a test's zeo server serves: a FileStorage
    in tmp_path, or with ``--storage relstorage`` a RelStorage on a new
    database of the session's PostgreSQL (``%import relstorage`` included:
    ZConfig takes it after the ``<zeo>`` section)."""
    if storage_backend == "relstorage":
        from tests.support.postgresql import relstorage_config

        cluster = request.getfixturevalue("postgresql")
        dsn = cluster.dsn(cluster.create_database("test"))
        return "%import relstorage\n" + relstorage_config(dsn, name="1")
    return f"<filestorage 1>\n  path {tmp_path / 'Data.fs'}\n</filestorage>\n"
