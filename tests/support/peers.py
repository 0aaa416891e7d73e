"""Where things are, and the reference peers installed by ``make peers``
(real ZEO 6.2, papa 1.0.6, DoJobber) that interop tests run beside ours."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
SRC = ROOT / "src"
PEERS = ROOT / ".peers"
PYTHON = sys.executable


def require_peer(name: str) -> Path:
    """Path of a reference peer installed by ``make peers``.

    Skips the test when the peer is missing, unless ZEOPAPA_REQUIRE_PEERS is
    set (as ``make test`` does), in which case the test fails.
    """
    path = PEERS / name
    if not (path / ".installed").exists():
        message = f"reference peer {name!r} not installed in {path} (run `make peers`)"
        if os.environ.get("ZEOPAPA_REQUIRE_PEERS"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def peer_env(peer_path: Path) -> dict[str, str]:
    """Environment for a subprocess that must import the peer, not us."""
    environment = dict(os.environ)
    environment["PYTHONPATH"] = str(peer_path)
    environment.pop("ZEO_MSGPACK", None)
    return environment


def our_env() -> dict[str, str]:
    """Environment for a subprocess that must import our code, never a peer's.

    ``PYTHONPATH`` names our sources only: a test process run with a peer on
    its path (``--impl real`` conformance) must not hand it on.
    """
    environment = dict(os.environ)
    environment["PYTHONPATH"] = str(SRC)
    environment.pop("ZEO_MSGPACK", None)
    return environment
