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
    """Make *c* (JupyterHub's configuration) spawn with :class:`MOSlurmSpawner`."""
    from papa.hub.spawner import MOSlurmSpawner

    c.JupyterHub.spawner_class = MOSlurmSpawner


def __getattr__(name: str) -> Any:
    # The spawner imports JupyterHub: only when asked for.
    if name == "MOSlurmSpawner":
        from papa.hub.spawner import MOSlurmSpawner

        return MOSlurmSpawner
    raise AttributeError(name)
