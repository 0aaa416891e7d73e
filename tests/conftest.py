"""Fixtures shared by every test package; the helpers live in
``tests.support`` (the names below stay importable from here)."""

from pathlib import Path

import pytest

from tests.support import PEERS, PYTHON, ROOT, free_port, peer_env, require_peer

__all__ = ["PEERS", "PYTHON", "ROOT", "free_port", "peer_env", "require_peer"]


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
