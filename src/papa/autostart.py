"""Starting a kernel when ``Papa()`` finds none answering (autostart).

The kernel is a separate ``python -m papa`` process in a session of its
own, never a fork of the client as in papa 1.0.6, so that it outlives the
client and inherits none of its threads or file descriptors.  In debug mode
``Papa`` runs it in a thread instead (:func:`papa.kernel.start_in_thread`);
:func:`kernel_alive` tells for both whether a kernel this process started
still runs.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading

from .errors import Error

log = logging.getLogger(__name__)


def kernel_alive(started: subprocess.Popen | threading.Thread) -> bool:
    """Is the kernel process (or debug-mode thread) *started* still running?"""
    if isinstance(started, threading.Thread):
        return started.is_alive()
    return started.poll() is None


def start_kernel_thread(
    port_or_path: int | str, quit_when_no_connections: bool
) -> threading.Thread | None:
    """Debug mode: run the kernel in a daemon thread of this process.

    None when it cannot listen (another thread's or process's kernel may
    have taken the address meanwhile: connecting will tell).
    """
    from .kernel import start_in_thread

    try:
        return start_in_thread(port_or_path, quit_when_no_connections)
    except Error as exc:
        log.info("kernel thread did not start: %s", exc)
        return None


def start_kernel_process(port_or_path: int | str) -> subprocess.Popen:
    """Start ``python -m papa`` detached from this process's session."""
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [package_parent, *filter(None, [env.get("PYTHONPATH")])]
    )
    if isinstance(port_or_path, str):
        where = ["-u", port_or_path]
    else:
        where = ["-p", str(port_or_path)]
    log.info("starting a papa kernel on %s", port_or_path)
    return subprocess.Popen(
        [sys.executable, "-m", "papa", *where],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd="/",
        env=env,
        start_new_session=True,
        close_fds=True,
    )
