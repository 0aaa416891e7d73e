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
