"""Argument checks for every method a client may call.

A frame that decodes fine can still carry nonsense: a str where an oid
belongs, three arguments to a two-argument method.  Storages react to such
input with anything from a TypeError to silently writing a bad record, so
the server checks the shape of the arguments before calling and treats a
mismatch as a protocol violation (the connection is closed, PROTOCOL.md 3.4).
Values are only checked for their wire type and size, never looked up.

These are facts of the wire protocol, so they live beside it: the server's
session (:mod:`.server`) applies them to every call before a storage sees it.
"""

from collections.abc import Callable
from typing import Any

Checker = Callable[[Any], "str | None"]


def _is_oid(value: Any) -> bool:
    return type(value) is bytes and len(value) == 8


def _is_optional_oid(value: Any) -> bool:
    return value is None or (type(value) is bytes and len(value) == 8)


def _is_bytes(value: Any) -> bool:
    return isinstance(value, bytes)


def _is_serial(value: Any) -> bool:
    # Some callers (ZODB's own blob doctests) pass the serial of a new object
    # as the str "\0" * 8; storages only compare it, so let it through.
    return value is None or (isinstance(value, (bytes, str)) and len(value) == 8)


def _is_optional_bytes(value: Any) -> bool:
    return value is None or isinstance(value, bytes)


def _is_text(value: Any) -> bool:
    return isinstance(value, (str, bytes))


def _is_int(value: Any) -> bool:
    return isinstance(value, int)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float))


def _is_dict(value: Any) -> bool:
    return isinstance(value, dict)


def _is_transaction_id(value: Any) -> bool:
    # Real clients send id(transaction), an int; accept the other hashable
    # scalars a client might use as an opaque key.
    return isinstance(value, (int, str, bytes))


def _is_int_sequence(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, int) for v in value)


def _is_anything(value: Any) -> bool:
    return True


KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "oid": (_is_oid, "an 8-byte oid"),
    "tid": (_is_oid, "an 8-byte tid"),
    "oid?": (_is_optional_oid, "an 8-byte oid or None"),
    "tid?": (_is_optional_oid, "an 8-byte tid or None"),
    "serial": (_is_serial, "an 8-byte serial or None"),
    "bytes": (_is_bytes, "bytes"),
    "bytes?": (_is_optional_bytes, "bytes or None"),
    "text": (_is_text, "a string"),
    "int": (_is_int, "an integer"),
    "number": (_is_number, "a number"),
    "dict": (_is_dict, "a dict"),
    "txn": (_is_transaction_id, "a transaction id"),
    "ints": (_is_int_sequence, "a list of integers"),
    "any": (_is_anything, "anything"),
}

# name: (argument kinds, number of required arguments).  The serial a client
# read is None for a new object in some clients (ZODB's own tests store that
# way), so "serial" arguments accept None.
SIGNATURES: dict[str, tuple[tuple[str, ...], int]] = {
    "register": (("text", "any"), 2),
    "get_info": ((), 0),
    "lastTransaction": ((), 0),
    "ping": ((), 0),
    "server_status": ((), 0),
    "set_client_label": (("any",), 1),
    "getInvalidations": (("tid",), 1),
    "new_oids": (("int",), 0),
    "new_oid": ((), 0),
    "loadBefore": (("oid", "tid"), 2),
    "loadSerial": (("oid", "tid"), 2),
    "getTid": (("oid",), 1),
    "history": (("oid", "int"), 1),
    "record_iternext": (("oid?",), 0),
    "tpc_begin": (("txn", "text", "text", "dict", "tid?", "text"), 4),
    "storea": (("oid", "serial", "bytes", "txn"), 4),
    "checkCurrentSerialInTransaction": (("oid", "serial", "txn"), 3),
    "deleteObject": (("oid", "serial", "txn"), 3),
    "restorea": (("oid", "tid", "bytes?", "tid?", "txn"), 5),
    "undoa": (("bytes", "txn"), 2),
    "storeBlobStart": ((), 0),
    "storeBlobChunk": (("bytes",), 1),
    "storeBlobEnd": (("oid", "serial", "bytes", "txn"), 4),
    "storeBlobShared": (("oid", "serial", "bytes", "text", "txn"), 5),
    "vote": (("txn",), 1),
    "tpc_finish": (("txn",), 1),
    "tpc_abort": (("txn",), 1),
    "pack": (("number", "any", "any"), 1),
    "undoLog": (("int", "int"), 0),
    "undoInfo": (("int", "int", "any"), 0),
    "iterator_start": (("tid?", "tid?"), 0),
    "iterator_next": (("int",), 1),
    "iterator_record_start": (("int", "tid"), 2),
    "iterator_record_next": (("int",), 1),
    "iterator_gc": (("ints",), 1),
    "sendBlob": (("oid", "tid"), 2),
}


def _make_checker(name: str, kinds: tuple[str, ...], required: int) -> Checker:
    checks = tuple(KINDS[kind] for kind in kinds)
    most = len(kinds)

    def check(args: Any) -> str | None:
        """Return None when *args* fit, else a sentence saying what is wrong."""
        if type(args) is not tuple:
            return f"{name}: arguments must be a tuple, got {type(args).__name__}"
        count = len(args)
        if count < required or count > most:
            expected = str(most) if required == most else f"{required} to {most}"
            return f"{name}: takes {expected} arguments, got {count}"
        for position, (value, (predicate, description)) in enumerate(
            zip(args, checks, strict=False)
        ):
            if not predicate(value):
                return (
                    f"{name}: argument {position + 1} must be {description}, "
                    f"got {type(value).__name__}"
                )
        return None

    return check


CHECKERS: dict[str, Checker] = {
    name: _make_checker(name, kinds, required)
    for name, (kinds, required) in SIGNATURES.items()
}
