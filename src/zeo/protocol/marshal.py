"""Encoding of RPC messages: msgpack (``M``) or pickle protocol 3 (``Z``).

A message is the 4-tuple ``(msgid, async_flag, name, args)``.  The pickle
decoder resolves globals through an allow-list of exact names: ZEO's
"restricted" unpickler admits every attribute of ``builtins``, which lets a
frame call ``eval`` on the server (PROTOCOL.md 3.2).  Ours admits only the
classes legitimate clients send, so a frame naming ``builtins.eval`` or
``os.system`` fails to decode and nothing runs.

A pickle is also checked for memo indexes beyond its own size before it is
loaded: CPython's unpickler grows its memo table to twice the index a
``PUT``/``LONG_BINPUT`` names, so 40 bytes naming index 2**30 made it
allocate gigabytes (found by fuzzing).
"""

import io
import logging
import pickle
import pickletools
from collections.abc import Callable
from typing import Any

import msgpack
from ZODB.POSException import POSError, POSKeyError

from ..exceptions import ProtocolError, ServerException

logger = logging.getLogger(__name__)

PROTOCOL_VERSION = b"5"
ENCODINGS = (b"M", b"Z")


def _allowed_globals() -> dict[tuple[str, str], Any]:
    import copyreg

    allowed = {
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "complex"): complex,
        # What the __reduce__ of a container subclass names, e.g. a
        # transaction extension that is a dict subclass pickles as
        # ``dict(items)`` (real ZEO clients send it as is).  Calling these
        # on data has no side effects.  bytes and bytearray stay out:
        # ``bytes(10**10)`` would allocate 10 GB.
        ("builtins", "dict"): dict,
        ("builtins", "list"): list,
        ("builtins", "tuple"): tuple,
        ("builtins", "str"): str,
        ("builtins", "int"): int,
        ("builtins", "float"): float,
        ("builtins", "bool"): bool,
        # copyreg._reconstructor(cls, base, state) builds instances of
        # protocol-0/1 pickles; it needs the base class (object), and cls and
        # base themselves pass through this table, so it cannot reach anything
        # that is not listed here.
        ("builtins", "object"): object,
        # typeshed does not declare this private helper of copyreg.
        ("copyreg", "_reconstructor"): copyreg._reconstructor,  # type: ignore[attr-defined]
    }
    # Python 2 spellings of the same names.
    for (module, name), value in list(allowed.items()):
        py2 = {"builtins": "__builtin__", "copyreg": "copy_reg"}[module]
        allowed[(py2, name)] = value
    try:
        from ZopeUndo.Prefix import Prefix  # Zope's undoInfo specification

        allowed[("ZopeUndo.Prefix", "Prefix")] = Prefix
    except ImportError:  # pragma: no cover - ZopeUndo is a dependency
        pass
    try:
        import zodbpickle

        allowed[("zodbpickle", "binary")] = zodbpickle.binary
    except ImportError:  # pragma: no cover - zodbpickle is a dependency
        pass
    return allowed


ALLOWED_GLOBALS = _allowed_globals()


def _client_allowed_globals() -> dict[tuple[str, str], Any]:
    """The server's names plus the exceptions a server may send back.

    A pickling server (real ZEO's included) sends an error whose state holds
    another exception, e.g. ``MultipleUndoErrors([(oid, UndoError(...))])``,
    as ``ZODB.POSException._recon(UndoError, state)``.  ``_recon`` only calls
    ``cls.__new__`` and ``__setstate__`` on a class that itself comes through
    this table, and constructing an exception class runs no user code, so
    admitting exactly these names keeps the decoder closed.
    """
    import builtins

    import ZODB.POSException

    from .. import exceptions

    allowed = dict(ALLOWED_GLOBALS)
    allowed[("ZODB.POSException", "_recon")] = ZODB.POSException._recon
    for module_name, module in (
        ("ZODB.POSException", ZODB.POSException),
        ("builtins", builtins),
        ("zeo.exceptions", exceptions),
    ):
        for name, value in vars(module).items():
            if isinstance(value, type) and issubclass(value, Exception):
                allowed[(module_name, name)] = value
    return allowed


CLIENT_ALLOWED_GLOBALS = _client_allowed_globals()


class ForbiddenGlobal(pickle.UnpicklingError):
    """A pickle named a global outside the allow-list."""


class SafeUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the exact names in ``ALLOWED_GLOBALS``."""

    allowed = ALLOWED_GLOBALS

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise ForbiddenGlobal(f"forbidden global {module}.{name} in a pickle")


class ClientUnpickler(SafeUnpickler):
    """Unpickler for what servers send: ``CLIENT_ALLOWED_GLOBALS``."""

    allowed = CLIENT_ALLOWED_GLOBALS


# The opcodes that store into the memo at an index the pickle names (BINPUT's
# index is one byte, always small).
_INDEXED_PUTS = frozenset({"PUT", "LONG_BINPUT"})


def _check_pickle(data: bytes, allowed: dict[tuple[str, str], Any]) -> None:
    """Refuse a pickle naming a memo index above its length (a well-formed
    one memoizes at most one object per byte, numbered from 0), before the
    unpickler sees it; a ``GLOBAL`` met on the way is checked against
    *allowed* in its turn, so a forbidden one is still named as such."""
    for opcode, argument, _ in pickletools.genops(data):
        if opcode.name in _INDEXED_PUTS and not 0 <= int(str(argument)) <= len(data):
            raise pickle.UnpicklingError(f"memo index {argument} out of range")
        if opcode.name == "GLOBAL":
            module, _, name = str(argument).partition(" ")
            if (module, name) not in allowed:
                raise ForbiddenGlobal(f"forbidden global {module}.{name} in a pickle")


def _pickle_loads(data: bytes) -> Any:
    _check_pickle(data, ALLOWED_GLOBALS)
    return SafeUnpickler(io.BytesIO(data)).load()


def _client_pickle_loads(data: bytes) -> Any:
    _check_pickle(data, CLIENT_ALLOWED_GLOBALS)
    return ClientUnpickler(io.BytesIO(data)).load()


def _pickle_dumps(message: tuple) -> bytes:
    return pickle.dumps(message, 3)


def reduce_exception(exc: BaseException) -> tuple[str, Any]:
    """Return ``(dotted_class_name, exc.__dict__ or exc.args)`` as ZEO does.

    A storage's own subclass of a ZODB error (RelStorage's POSKeyError,
    its lock-timeout ConflictErrors) goes by the name of the nearest ZODB
    class: a client can rebuild only ZODB's, and means the same by it.
    """
    cls = _portable_class(type(exc))
    name = f"{cls.__module__}.{cls.__name__}"
    if cls is not type(exc) and issubclass(cls, POSKeyError):
        # RelStorage's adds a dict of its live cache and connections (which
        # cannot be encoded: the reply was its text, not the oid).
        return name, exc.args[:1]
    return name, (exc.__dict__ or exc.args)


def _portable_class(cls: type) -> type:
    if not issubclass(cls, POSError) or cls.__module__.startswith("ZODB."):
        return cls
    for base in cls.__mro__:
        if base.__module__.startswith("ZODB."):
            return base
    return cls


def _server_default(obj: object) -> Any:
    if isinstance(obj, Exception):
        return reduce_exception(obj)
    if isinstance(obj, (set, frozenset)):
        return tuple(obj)
    raise TypeError(f"cannot encode {type(obj).__name__} with msgpack")


def _client_default(obj: object) -> Any:
    if isinstance(obj, (set, frozenset)):
        return tuple(obj)
    raise TypeError(f"cannot encode {type(obj).__name__} with msgpack")


def encoder(protocol: bytes, server: bool = False) -> Callable[..., bytes]:
    """Return ``encode(msgid, async_flag, name, args) -> bytes`` (unframed).

    *protocol* is the session protocol (``b'M5'`` or ``b'Z5'``); only its
    first byte matters.
    """
    kind = protocol[:1]
    if kind == b"M":
        default = _server_default if server else _client_default
        packb = msgpack.packb

        def encode(*message: Any) -> bytes:
            return packb(message, use_bin_type=True, default=default)

        return encode
    if kind == b"Z":

        def encode(*message: Any) -> bytes:
            return _pickle_dumps(message)

        return encode
    raise ProtocolError(f"unknown encoding {kind!r} in protocol {protocol!r}")


def decoder(protocol: bytes, client: bool = False) -> Callable[[bytes], tuple]:
    """Return ``decode(bytes) -> (msgid, async_flag, name, args)``.

    Raises :class:`ProtocolError` for anything that is not a well-formed
    message, including a pickle that names a global outside the allow-list
    (``ALLOWED_GLOBALS``; with *client* true, ``CLIENT_ALLOWED_GLOBALS``,
    which adds the exception classes servers put in error replies).
    """
    kind = protocol[:1]
    load: Callable[[bytes], Any]
    if kind == b"M":
        unpackb = msgpack.unpackb

        def load(data: bytes) -> Any:
            return unpackb(data, raw=False, use_list=False)

    elif kind == b"Z":
        load = _client_pickle_loads if client else _pickle_loads
    else:
        raise ProtocolError(f"unknown encoding {kind!r} in protocol {protocol!r}")

    def decode(data: bytes) -> tuple:
        try:
            message = load(data)
        except ForbiddenGlobal as exc:
            raise ProtocolError(str(exc))
        except Exception as exc:
            raise ProtocolError(
                f"undecodable message ({type(exc).__name__}: {exc})"
            ) from None
        if type(message) is not tuple or len(message) != 4:
            raise ProtocolError(
                f"a message must be a 4-tuple, got {type(message).__name__}"
            )
        if not isinstance(message[2], str):
            raise ProtocolError(
                f"method name must be a string, got {type(message[2]).__name__}"
            )
        return message

    return decode


def server_decoder(protocol: bytes) -> Callable[[bytes], tuple]:
    """The server's decoder: the strict allow-list."""
    return decoder(protocol)


def client_decoder(protocol: bytes) -> Callable[[bytes], tuple]:
    """The client's decoder: also admits exceptions inside error replies."""
    return decoder(protocol, client=True)


# -- errors coming back from a server ------------------------------------


def _lookup_exception(name: str) -> type[Exception] | None:
    module, _, clsname = name.rpartition(".")
    if module in ("builtins", "exceptions"):
        import builtins

        cls = getattr(builtins, clsname, None)
    elif module == "ZODB.POSException":
        import ZODB.POSException

        cls = getattr(ZODB.POSException, clsname, None)
    elif module in ("ZEO.Exceptions", "zeo.exceptions"):
        from .. import exceptions

        cls = getattr(exceptions, clsname, None)
    else:
        cls = None
    if isinstance(cls, type) and issubclass(cls, Exception):
        return cls
    return None


def exception_from_wire(name: object, payload: Any) -> Exception:
    """Rebuild the exception a server encoded with :func:`reduce_exception`.

    ConflictError and its kin get back ``oid``, ``serials`` and
    ``class_name``; unknown names become :class:`ServerException`.
    """
    from ZODB.POSException import (
        BTreesConflictError,
        ConflictError,
        MultipleUndoErrors,
    )

    # Any: ZODB.POSException is untyped, so issubclass() cannot narrow.
    cls: Any = _lookup_exception(name) if isinstance(name, str) else None
    if cls is None:
        return ServerException(name, payload)
    try:
        if isinstance(payload, dict):
            if issubclass(cls, ConflictError) and not issubclass(
                cls, BTreesConflictError
            ):
                exc = cls(
                    message=payload.get("message"),
                    oid=payload.get("oid"),
                    serials=payload.get("serials"),
                )
                if payload.get("class_name") is not None:
                    exc.class_name = payload["class_name"]
                if payload.get("data") is not None:
                    exc.data = payload["data"]
                return exc
            if issubclass(cls, BTreesConflictError):
                return cls(
                    payload.get("p1"),
                    payload.get("p2"),
                    payload.get("p3"),
                    payload.get("reason"),
                )
            if issubclass(cls, MultipleUndoErrors):
                return cls(list(payload.get("_errs", ())))
            exc = cls.__new__(cls)
            exc.__dict__.update(payload)
            return exc
        return cls(*payload)
    except Exception:
        logger.debug("could not rebuild %s%r", name, payload, exc_info=True)
        return ServerException(name, payload)
