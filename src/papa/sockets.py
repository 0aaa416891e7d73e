"""Named sockets the kernel binds once and hands to the processes it starts.

A socket is described by a :class:`SocketSpec` (what was asked: the options
of ``make socket``) and held open by a :class:`ManagedSocket`.  Children
receive one by ``$(socket.NAME.fileno)`` (the file number is passed through
exec) or learn its port by ``$(socket.NAME.port)``.

Differences from papa 1.0.6, all bug fixes: an existing file that is not a
socket is never unlinked; ``type=dgram`` is bound without ``listen()``;
``interface=`` uses SO_BINDTODEVICE; a ``reuseport`` socket keeps its port
held and each child gets its own clone bound *after* SO_REUSEPORT is set.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import stat

from .errors import Error

log = logging.getLogger(__name__)

FAMILIES = {
    name[3:].lower(): getattr(socket, name)
    for name in dir(socket)
    if name.startswith("AF_") and getattr(socket, name)
}
FAMILY_NAMES = {number: name for name, number in sorted(FAMILIES.items())}
FAMILY_NAMES[socket.AF_INET] = "inet"
FAMILY_NAMES[socket.AF_INET6] = "inet6"
FAMILY_NAMES[socket.AF_UNIX] = "unix"
TYPES = {
    name[5:].lower(): getattr(socket, name)
    for name in ("SOCK_STREAM", "SOCK_DGRAM", "SOCK_RAW", "SOCK_RDM", "SOCK_SEQPACKET")
    if hasattr(socket, name)
}
TYPE_NAMES = {number: name for name, number in TYPES.items()}
CONNECTION_TYPES = {socket.SOCK_STREAM, socket.SOCK_SEQPACKET}
OPTIONS = (
    "family",
    "type",
    "backlog",
    "path",
    "umask",
    "host",
    "port",
    "interface",
    "reuseport",
)


@dataclasses.dataclass
class SocketSpec:
    """What ``make socket`` asked for, normalised like papa does."""

    name: str
    family: int = socket.AF_INET
    type: int = socket.SOCK_STREAM
    backlog: int = 5
    path: str | None = None
    umask: int | None = None
    host: str | None = None
    port: int | None = None
    interface: str | None = None
    reuseport: bool = False

    @classmethod
    def from_options(cls, name: str, options: dict[str, str]) -> SocketSpec:
        """Build a spec from ``key=value`` options; raise Error on bad ones."""
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise Error(
                f"Unknown socket option {unknown[0]!r}; expected one of: "
                + ", ".join(OPTIONS)
            )
        path = options.get("path") or None
        family_name = options.get("family")
        if family_name:
            if family_name.lower() not in FAMILIES:
                raise Error(f"Unknown socket family {family_name!r}")
            family = FAMILIES[family_name.lower()]
        else:
            family = socket.AF_UNIX if path else socket.AF_INET
        type_name = options.get("type") or "stream"
        if type_name.lower() not in TYPES:
            raise Error(
                f"Unknown socket type {type_name!r}; expected one of: "
                + ", ".join(sorted(TYPES))
            )
        spec = cls(name, family, TYPES[type_name.lower()])
        spec.backlog = _integer(options, "backlog", 5)
        if family == socket.AF_UNIX:
            if not path or not os.path.isabs(path):
                raise Error("Absolute path required for Unix sockets")
            spec.path = path
            # papa reads umask as a decimal number; kept for compatibility.
            spec.umask = _integer(options, "umask", None)
            return spec
        if family not in (socket.AF_INET, socket.AF_INET6):
            raise Error(f"Socket family {FAMILY_NAMES[family]!r} is not supported")
        spec.port = _integer(options, "port", 0)
        spec.interface = options.get("interface") or None
        spec.reuseport = bool(options.get("reuseport"))
        spec.host = options.get("host") or None
        if spec.host is None:
            if family == socket.AF_INET6:
                spec.host = "::" if spec.interface else "::1"
            else:
                spec.host = "0.0.0.0" if spec.interface else "127.0.0.1"
        return spec

    def same_request(self, other: SocketSpec) -> bool:
        """True when ``other`` asks for this socket again (idempotent make)."""
        return (
            self.name == other.name
            and self.family == other.family
            and self.type == other.type
            and self.backlog == other.backlog
            and self.path == other.path
            and self.umask == other.umask
            and self.host == other.host
            and (self.port == other.port or not other.port)
            and self.interface == other.interface
        )

    def to_state(self) -> dict:
        """A JSON-able record for the state directory."""
        return dataclasses.asdict(self)


def _integer(options: dict[str, str], key: str, default):
    value = options.get(key)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise Error(f"The socket option {key} must be an integer, not {value!r}")


class ManagedSocket:
    """A bound socket held by the kernel on behalf of its processes."""

    def __init__(self, spec: SocketSpec):
        self.spec = spec
        self.socket: socket.socket | None = None
        self._address = None

    def open(self) -> None:
        """Bind (and listen, for connection types) as the spec says."""
        spec = self.spec
        if spec.family == socket.AF_UNIX:
            self.socket = self._bind_unix()
        else:
            self._address = self._resolve()
            self.socket = self._bind_inet(listen=not spec.reuseport)
            spec.port = self.socket.getsockname()[1]
        log.info("opened socket %s", self.line())

    def _bind_unix(self) -> socket.socket:
        path = self.spec.path
        if socket_file_exists(path):
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, self.spec.type)
        try:
            sock.bind(path)
            if self.spec.umask is not None:
                os.chmod(path, 0o777 & ~self.spec.umask)
            if self.spec.type in CONNECTION_TYPES:
                sock.listen(self.spec.backlog)
        except OSError as exc:
            sock.close()
            raise Error(f"Bind failed: {exc}")
        sock.set_inheritable(True)
        return sock

    def _resolve(self):
        spec = self.spec
        try:
            infos = socket.getaddrinfo(spec.host, spec.port, spec.family, spec.type)
        except OSError as exc:
            raise Error(f"Cannot resolve host {spec.host!r}: {exc}")
        return infos[0][4]

    def _bind_inet(self, listen: bool, port: int | None = None) -> socket.socket:
        spec = self.spec
        sock = socket.socket(spec.family, spec.type)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if spec.reuseport:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if spec.interface:
                sock.setsockopt(
                    socket.SOL_SOCKET,
                    socket.SO_BINDTODEVICE,
                    spec.interface.encode() + b"\0",
                )
            address = self._address
            if port is not None:
                address = (address[0], port, *address[2:])
            sock.bind(address)
            if listen and spec.type in CONNECTION_TYPES:
                sock.listen(spec.backlog)
        except OSError as exc:
            sock.close()
            raise Error(f"Bind failed: {exc}")
        sock.set_inheritable(True)
        return sock

    def recover(self, pids: list[int], fileno: int) -> bool:
        """Take the socket back from a process that inherited it.

        After a kernel restart the port is still held by the children that
        inherited the socket, so binding again fails.  Those children have
        it under the same file number the old kernel had, and pidfd_getfd
        (Linux 5.6+, ptrace permission needed) copies it back.
        """
        for pid in pids:
            sock = _socket_from_process(pid, fileno)
            if sock is None:
                continue
            if self._matches(sock):
                sock.set_inheritable(True)
                self.socket = sock
                log.info("recovered socket %s from pid %s", self.spec.name, pid)
                return True
            sock.close()
        return False

    def _matches(self, sock: socket.socket) -> bool:
        spec = self.spec
        if sock.family != spec.family or sock.type != spec.type:
            return False
        if spec.family == socket.AF_UNIX:
            return sock.getsockname() == spec.path
        return sock.getsockname()[1] == spec.port

    def fileno_for_child(self) -> tuple[int, socket.socket | None]:
        """The file number a child gets, and a clone to close after spawn.

        A reuseport socket gives each child its own listening clone on the
        same port, so the OS spreads connections across them; the kernel's
        own socket stays bound but never listens, so it receives nothing.
        """
        if self.socket is None:
            raise Error(f"Socket {self.spec.name} is closed")
        if not self.spec.reuseport:
            return self.socket.fileno(), None
        clone = self._bind_inet(listen=True, port=self.spec.port)
        return clone.fileno(), clone

    def line(self) -> str:
        """The socket line of ``list sockets`` (papa's field order)."""
        spec = self.spec
        fields = [
            spec.name,
            f"family={FAMILY_NAMES.get(spec.family, spec.family)}",
            f"type={TYPE_NAMES.get(spec.type, spec.type)}",
            f"backlog={spec.backlog}",
        ]
        if spec.path is not None:
            fields.append(f"path={spec.path}")
        if spec.umask is not None:
            fields.append(f"umask={spec.umask}")
        if spec.host is not None:
            fields.append(f"host={spec.host}")
        if spec.port is not None:
            fields.append(f"port={spec.port}")
        if spec.interface is not None:
            fields.append(f"interface={spec.interface}")
        if spec.reuseport:
            fields.append("reuseport=1")
        if self.socket is not None:
            fields.append(f"fileno={self.socket.fileno()}")
        return " ".join(fields)

    def close(self) -> None:
        """Close the socket; a Unix socket's file is removed too."""
        if self.socket is not None:
            self.socket.close()
            self.socket = None
        if self.spec.path:
            remove_socket_file(self.spec.path)
        log.info("closed socket %s", self.spec.name)


def socket_file_exists(path: str) -> bool:
    """True if a socket file is at ``path``; Error if another kind of file is.

    A socket file left behind may be replaced, but nothing else is ever
    removed for a socket: a wrong path must not delete someone's data.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    if not stat.S_ISSOCK(mode):
        raise Error(f"{path} exists and is not a socket; refusing to remove it")
    return True


def remove_socket_file(path: str) -> None:
    """Remove the socket file at ``path``, if that is what is there."""
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except OSError:
        pass


def _socket_from_process(pid: int, fileno: int) -> socket.socket | None:
    """A duplicate of file ``fileno`` of process ``pid``, if it is a socket."""
    import ctypes

    pidfd_getfd = 438  # the same number on every architecture (generic table)
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        descriptor = libc.syscall(pidfd_getfd, pidfd, fileno, 0)
    finally:
        os.close(pidfd)
    if descriptor < 0:
        return None
    try:
        return socket.socket(fileno=descriptor)
    except OSError:
        os.close(descriptor)
        return None
