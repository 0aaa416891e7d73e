"""Where the papa kernel is: the one reading of its address for dispatch.

``$DISPATCH_PAPA`` (or a configuration's ``papa`` key) is a TCP port on
127.0.0.1 or a Unix socket path; unset, papa's own default
(127.0.0.1:20202, which ``Papa()`` starts if absent).
"""

from __future__ import annotations

import logging
import os
import socket

logger = logging.getLogger(__name__)

PAPA_VARIABLE = "DISPATCH_PAPA"
DEFAULT_PAPA = 20202
# Seconds a probe of the kernel waits for it to accept.
PROBE_TIMEOUT = 5


def papa_address(text: str | int | None = None) -> int | str | None:
    """*text* (default ``$DISPATCH_PAPA``) as papa's ``Papa()`` wants it: a
    port number or a socket path; None for papa's default."""
    value = os.environ.get(PAPA_VARIABLE) if text is None else text
    if value is None or value == "":
        return None
    return int(value) if str(value).isdigit() else value


def kernel_answers(address: int | str | None) -> bool:
    """True when a papa kernel listens at *address* (a port or a socket
    path).  Checked before each ``Papa()``, which would otherwise start a
    kernel of its own where the configured one is down or restarting."""
    if isinstance(address, str):
        family, location = socket.AF_UNIX, address
        target: str | tuple[str, int] = location
    else:
        family = socket.AF_INET
        target = ("127.0.0.1", address or DEFAULT_PAPA)
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.settimeout(PROBE_TIMEOUT)
        try:
            probe.connect(target)
        except OSError:
            return False
    return True
