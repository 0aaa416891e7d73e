"""A JupyterHub spawner for jupyterhub-moss sites, spawning through papa.

In ``jupyterhub_config.py``, where a moss site has::

    import jupyterhub_moss
    jupyterhub_moss.set_config(c)

write::

    import papa.hub
    papa.hub.set_config(c)

and keep ``c.MOSlurmSpawner.partitions`` and the other settings as they are
(docs/jupyterhub.rst lists each and whether it behaves the same).  Needs
the ``jupyterhub`` extra (``pip install zeopapa[jupyterhub]``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["MOSlurmSpawner", "set_config"]


def set_config(c: Any) -> None:
    """Make *c* (JupyterHub's configuration) spawn with :class:`MOSlurmSpawner`,
    and serve the spawn form's script (``/hub/form/spawn.js``)."""
    from tornado.web import StaticFileHandler

    from papa.hub.form import SCRIPT_PATH
    from papa.hub.spawner import MOSlurmSpawner
    from papa.slurm import assets

    c.JupyterHub.spawner_class = MOSlurmSpawner
    # JupyterHub puts its prefix (/hub) in front of the pattern.
    c.JupyterHub.extra_handlers.append(
        (
            "/" + SCRIPT_PATH.rsplit("/", 1)[0] + r"/(spawn\.js)",
            StaticFileHandler,
            {"path": str(assets.SPAWN_SCRIPT.parent)},
        )
    )


def __getattr__(name: str) -> Any:
    # The spawner imports JupyterHub: only when asked for.
    if name == "MOSlurmSpawner":
        from papa.hub.spawner import MOSlurmSpawner

        return MOSlurmSpawner
    raise AttributeError(name)
