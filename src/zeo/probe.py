"""The ``ruok`` status probe: one request, one JSON answer, no session.

Monitoring (nagios, load balancers) can ask a server how it is without
registering as a client (PROTOCOL.md section 9).
"""

import json
import socket
from typing import Any

from .address import parse_address
from .protocol import FrameDecoder, frame

__all__ = ["parse_address", "ruok"]


def ruok(
    address: str | int | tuple[str, int] | list, timeout: float = 10.0
) -> dict[str, dict[str, Any]]:
    """Return the server's status: ``{storage_name: {figure: value}}``."""
    address = parse_address(address)
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    if family == socket.AF_INET and ":" in address[0]:
        family = socket.AF_INET6
    decoder = FrameDecoder()
    frames: list[bytes] = []
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(address)
        sock.sendall(frame(b"ruok"))
        while len(frames) < 2:
            data = sock.recv(65536)
            if not data:
                break
            frames.extend(decoder.feed(data))
    if len(frames) < 2:
        raise ConnectionError(f"no status from {address!r} (got {len(frames)} frames)")
    return json.loads(frames[1])
