"""Where the spawn form's shared templates and script are, so that the web
console (dispatch) and JupyterHub's spawner (papa.hub) render the same
fields without papa depending on dispatch."""

from __future__ import annotations

import hashlib
from pathlib import Path

import jinja2

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
SPAWN_SCRIPT = HERE / "static" / "spawn.js"


def loader() -> jinja2.BaseLoader:
    """A loader of ``spawn_fields.html`` and ``spawn_partitions.html``."""
    return jinja2.FileSystemLoader(TEMPLATES)


def spawn_script() -> bytes:
    """``spawn.js``: the tabs of the spawn form."""
    return SPAWN_SCRIPT.read_bytes()


def spawn_script_version() -> str:
    """A short hash of ``spawn.js``, for a cache-busting ``?v=`` in its URL."""
    return hashlib.sha256(spawn_script()).hexdigest()[:12]
