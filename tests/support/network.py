"""Loopback sockets: free ports, probes, and a ZEO server's greeting."""

from __future__ import annotations

import socket
import struct

#: A probe of a loopback server answers at once or not at all.
PROBE_TIMEOUT = 5.0

Address = tuple[str, int] | str


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        return listener.getsockname()[1]


def family_of(address: Address) -> socket.AddressFamily:
    """A Unix socket is named by a path, a TCP one by (host, port)."""
    return socket.AF_UNIX if isinstance(address, str) else socket.AF_INET


def can_connect(address: Address | int) -> bool:
    """True when something accepts connections at *address* (a port alone
    means 127.0.0.1)."""
    if isinstance(address, int):
        address = ("127.0.0.1", address)
    with socket.socket(family_of(address)) as probe:
        probe.settimeout(PROBE_TIMEOUT)
        try:
            probe.connect(address)
        except OSError:
            return False
    return True


def read_greeting(address: Address, timeout: float = PROBE_TIMEOUT) -> bytes:
    """Connect and return the payload of the first frame a ZEO server sends
    (``M5`` or ``Z5``, by encoding)."""
    with socket.socket(family_of(address)) as connection:
        connection.settimeout(timeout)
        connection.connect(address)
        (size,) = struct.unpack(">I", receive_exactly(connection, 4))
        return receive_exactly(connection, size)


def receive_exactly(connection: socket.socket, size: int) -> bytes:
    """*size* bytes from *connection*; ``ConnectionError`` if it closes first."""
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise ConnectionError("server closed the connection")
        data += chunk
    return data
