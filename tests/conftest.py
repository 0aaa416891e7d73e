"""Fixtures shared by every test package."""

import os
import socket
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / ".peers"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_peer(name: str) -> Path:
    """Path of a reference peer installed by ``make peers``.

    Skips the test when the peer is missing, unless ZEOPAPA_REQUIRE_PEERS is
    set (as ``make test`` does), in which case the test fails.
    """
    path = PEERS / name
    if not (path / ".installed").exists():
        msg = f"reference peer {name!r} not installed in {path} (run `make peers`)"
        if os.environ.get("ZEOPAPA_REQUIRE_PEERS"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def peer_env(peer_path: Path) -> dict:
    """Environment for a subprocess that must import the peer, not us."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(peer_path)
    env.pop("ZEO_MSGPACK", None)
    return env


@pytest.fixture
def zeo_peer() -> Path:
    """Real ZEO 6.2, importable only in subprocesses run with peer_env()."""
    return require_peer("zeo")


PYTHON = sys.executable
