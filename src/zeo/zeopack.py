"""``zeopack``: pack storages served by ZEO servers, with ZEO's command line.

Usage (as ZEO 6.2's ``zeopack``; our additions are marked)::

    zeopack [options] [HOST:PORT[:NAME] | PATH[:NAME] ...]

    -d DAYS, --days DAYS    pack to DAYS days before the pack time
    -t HH[:MM[:SS]]         pack time of day (local time; default: now)
    -u PATH[:NAME], --unix  a Unix socket server (repeatable)
    -h HOST -p PORT [-S NAME]  the deprecated single-server spelling
    -U PATH [-S NAME]       the same for a Unix socket
    -W                      (ours, from old ZEO) wait for a server to come
                            up for as long as it takes
    --connect-timeout S     (ours) how long to wait for each server (60)

Exit status as ZEO's: 0 when every server that could be reached was
packed (a server that cannot be reached is reported on stderr and skipped,
and the command fails only when none could be reached), 1 for an error
(``Error:`` and the reason on stderr), 2 for an option that does not parse.
Without arguments it prints the help and exits 0.  Positional socket paths
(containing a ``/``) and ``[IPv6]:PORT`` are our additions.  ZEO's
``zeopack`` has no blob options (a pack server-side removes old blobs) and
neither do we.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import time
from collections.abc import Sequence

from .address import Address, parse_address

logger = logging.getLogger(__name__)

#: ZEO's ``zeopack`` polls ``is_connected`` 60 times a second apart.
CONNECT_TIMEOUT = 60.0
#: What -W waits: a year (threading refuses an infinite timeout).
FOREVER = 365 * 86400.0

DESCRIPTION = """\
Pack one or more storages hosted by ZEO servers.

The positional arguments specify 0 or more servers to pack, each of the
form host:port[:name] (or path[:name] for a Unix socket, with a '/').
The storage name defaults to 1."""


class PackError(Exception):
    """The command line cannot be used; the text says what to change."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zeopack",
        usage="%(prog)s [options] [servers]",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,  # -h is ZEO's host option
    )
    parser.add_argument("--help", action="help", help="show this help and exit")
    parser.add_argument(
        "-d",
        "--days",
        type=float,
        default=0,
        help="pack objects that are older than this number of days",
    )
    parser.add_argument(
        "-t",
        "--time",
        help="time of day to pack to, HH[:MM[:SS]]; defaults to the current time",
    )
    parser.add_argument(
        "-u",
        "--unix",
        dest="unix_sockets",
        action="append",
        default=[],
        metavar="PATH[:NAME]",
        help="a Unix-domain socket server to pack (repeatable)",
    )
    parser.add_argument("-h", dest="host", help="deprecated: host, with -p")
    parser.add_argument("-p", dest="port", type=int, help="deprecated: port, with -h")
    parser.add_argument(
        "-S",
        dest="name",
        default="1",
        help="deprecated: storage name for -h/-p or -U (default 1)",
    )
    parser.add_argument("-U", dest="unix", help="deprecated: Unix socket, with -S")
    parser.add_argument(
        "-W",
        dest="wait_forever",
        action="store_true",
        help="wait for each server to come up, however long it takes",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=CONNECT_TIMEOUT,
        metavar="SECONDS",
        help=f"how long to wait for each server (default {CONNECT_TIMEOUT:g})",
    )
    parser.add_argument("servers", nargs="*", help=argparse.SUPPRESS)
    return parser


def pack_time(days: float, time_of_day: str | None, now: float | None = None) -> float:
    """The pack time: *now* (or today at *time_of_day*, local) less *days*."""
    packt = time.time() if now is None else now
    if time_of_day:
        try:
            fields = [int(field) for field in time_of_day.split(":")]
        except ValueError:
            fields = []
        if not 1 <= len(fields) <= 3:
            raise PackError(
                f"Invalid time value: {time_of_day!r} (give HH, HH:MM or HH:MM:SS)"
            )
        hour, minute, second = fields + [0] * (3 - len(fields))
        local = time.localtime(packt)
        year, month, day = local[:3]
        weekday, yearday, dst = local[6:]
        packt = time.mktime(
            (year, month, day, hour, minute, second, weekday, yearday, dst)
        )
    return packt - days * 86400


def servers_to_pack(options: argparse.Namespace) -> list[tuple[Address, str]]:
    """Every ``(address, storage name)`` the options name, in ZEO's order."""
    servers: list[tuple[Address, str]] = []
    if options.host:
        if not options.port:
            raise PackError(
                "If host (-h) is specified then a port (-p) must be specified as well."
            )
        servers.append(((options.host, options.port), options.name))
    elif options.port:
        servers.append(((socket.gethostname(), options.port), options.name))
    if options.unix:
        servers.append((options.unix, options.name))
    for text in options.servers:
        servers.append(_server_specification(text))
    for text in options.unix_sockets:
        path, _, name = text.partition(":")
        if ":" in name:
            raise PackError(f"Invalid server specification: {text!r}")
        servers.append((path, name or "1"))
    if not servers:
        raise PackError("No servers specified.")
    return servers


def _server_specification(text: str) -> tuple[Address, str]:
    """Read ``host:port[:name]``, ``[v6]:port[:name]`` or ``path[:name]``."""
    if "/" in text:
        path, _, name = text.partition(":")
        return path, name or "1"
    host_part, bracket, rest = text.rpartition("]")
    prefix = host_part + bracket
    fields = rest.split(":")
    if bracket:  # "[::1]:8100:name": rest is ":8100:name"
        fields = [prefix] + fields[1:]
    if len(fields) not in (2, 3):
        raise PackError(f"Invalid server specification: {text!r}")
    try:
        address = parse_address(f"{fields[0]}:{fields[1]}")
    except ValueError:
        raise PackError(f"Invalid port in server specification: {text!r}") from None
    return address, fields[2] if len(fields) == 3 else "1"


def pack_one(address: Address, name: str, packt: float, timeout: float) -> None:
    """Pack storage *name* at *address* and wait for the pack to end.

    Raise :class:`~zeo.exceptions.ClientDisconnected` when no server with
    that storage answers within *timeout*.
    """
    from .clientstorage import ClientStorage

    storage = ClientStorage(
        address,
        storage=name,
        read_only=True,  # as ZEO: packing is allowed to read-only clients
        wait_timeout=timeout,
        cache_save_interval=None,
    )
    try:
        storage.pack(packt, wait=True)
    finally:
        storage.close()


def _error(message: str) -> int:
    sys.stderr.write(f"Error:\n{message}\n")
    return 1


def run(argv: Sequence[str]) -> int:
    """Pack what *argv* names; return the exit status."""
    parser = _parser()
    if not argv:
        parser.print_help()
        return 0
    options = parser.parse_args(list(argv))
    try:
        packt = pack_time(options.days, options.time)
        servers = servers_to_pack(options)
    except PackError as exc:
        return _error(str(exc))
    from .exceptions import ClientDisconnected

    timeout = FOREVER if options.wait_forever else options.connect_timeout
    server_found = False
    for address, name in servers:
        try:
            pack_one(address, name, packt, timeout)
        except ClientDisconnected as exc:
            sys.stderr.write(
                f"Couldn't connect to: {(address, name)!r}: {exc} "
                f"(is the server running, with that storage? -W waits without limit)\n"
            )
            continue
        except Exception as exc:
            logger.debug("pack failed", exc_info=True)
            return _error(
                f"Error packing storage {name} in {address!r}: "
                f"{type(exc).__name__}: {exc}"
            )
        server_found = True
    if not server_found:
        return _error("Cannot connect to any of the configured ZEO servers.")
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``zeopack`` console script."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.ERROR)  # reconnect attempts are not news here
    try:
        status = run(sys.argv[1:] if argv is None else argv)
    finally:
        root.removeHandler(handler)
    sys.exit(status)


if __name__ == "__main__":
    main()
