"""The one reading of a server address for the whole project.

A zeo server, a papa-facing dispatch option and every command line take
addresses in the same spellings, and this is where they are read:

- ``"host:port"``, ``"[::1]:port"`` and ``":port"`` (the default host);
- ``"port"`` alone, or an ``int``;
- a ``(host, port)`` tuple or list;
- anything else without a colon is a Unix socket path (``/run/zeo.sock``,
  ``zeo.sock``).

The default host is ``127.0.0.1`` for an address to connect to and ``""``
(every interface) for one to bind, as ZConfig's ``socket-binding-address``
reads ``:port``.
"""

from __future__ import annotations

Address = str | tuple[str, int]
"""A Unix socket path or an ``(host, port)`` pair."""

AddressLike = str | int | tuple[str, int] | list


def parse_address(address: AddressLike, *, bind: bool = False) -> Address:
    """Read *address* in any of the spellings above.

    Raise ``ValueError`` naming the text when it has a colon but no port
    number after it (a socket path with a colon must contain a ``/``).
    """
    default_host = "" if bind else "127.0.0.1"
    if isinstance(address, bool):
        raise ValueError(f"{address!r} is not an address")
    if isinstance(address, int):
        return (default_host, _port(address, address))
    if isinstance(address, (tuple, list)):
        if len(address) != 2:
            raise ValueError(f"{address!r} is not a (host, port) pair")
        host, port = address
        return (str(host), _port(port, address))
    if not isinstance(address, str):
        raise ValueError(f"{address!r} is not an address")
    text = address.strip()
    if not text:
        raise ValueError("an empty address: give HOST:PORT, PORT or a socket path")
    if "/" in text:
        return text
    if text.isdigit():
        return (default_host, _port(text, address))
    host, separator, port = text.rpartition(":")
    if not separator:
        return text
    if not port.isdigit():
        raise ValueError(
            f"{address!r}: the part after the last ':' must be a port number "
            "(a socket path with a ':' needs a '/', e.g. ./name)"
        )
    return (host.strip("[]") or default_host, _port(port, address))


def _port(value: object, address: object) -> int:
    try:
        port = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ValueError(f"{address!r}: {value!r} is not a port number")
    if not 0 <= port <= 65535:
        raise ValueError(f"{address!r}: port {port} is outside 0-65535")
    return port
