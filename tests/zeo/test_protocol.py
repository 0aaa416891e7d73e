"""Sans-IO protocol classes: framing and message encoding."""

import pickle
import struct

import msgpack
import pytest

from zeo.exceptions import ProtocolError, ServerException
from zeo.protocol import (
    FrameDecoder,
    client_decoder,
    decoder,
    encoder,
    frame,
    reduce_exception,
)
from zeo.protocol.marshal import exception_from_wire


def test_frame_roundtrip_in_arbitrary_pieces():
    payloads = [b"", b"a", b"hello" * 1000, bytes(range(256))]
    stream = b"".join(frame(p) for p in payloads)
    for step in (1, 3, 7, 4096, len(stream)):
        dec = FrameDecoder()
        got = []
        for i in range(0, len(stream), step):
            got.extend(dec.feed(stream[i : i + step]))
        assert got == payloads
        assert dec.pending == 0


def test_oversized_frame_is_refused_before_buffering():
    dec = FrameDecoder(max_size=1000)
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        dec.feed(struct.pack(">I", 1001) + b"x" * 10)


@pytest.mark.parametrize("protocol", [b"M5", b"Z5"])
def test_message_roundtrip(protocol):
    enc = encoder(protocol)
    dec = decoder(protocol)
    msg = (7, False, "loadBefore", (b"\0" * 8, b"\xff" * 8))
    assert dec(enc(*msg)) == msg
    # (oid, tid) msgids must survive as hashable tuples
    msg = ((b"\0" * 8, b"\1" * 8), 0, ".reply", (b"data", b"\0" * 8, None))
    assert dec(enc(*msg)) == msg


def test_real_zeo_register_bytes_decode():
    # ZEO 6.2's own encoding of register('1', 0), from PROTOCOL.md 3.2
    z = bytes.fromhex("8003284b018958080000007265676973746572580100000031")
    z += bytes.fromhex("4b0086742e")
    assert decoder(b"Z5")(z) == (1, False, "register", ("1", 0))
    m = bytes.fromhex("9401c2a8") + b"register" + bytes.fromhex("92a13100")
    assert decoder(b"M5")(m) == (1, False, "register", ("1", 0))
    assert encoder(b"M5")(1, False, "register", ("1", 0)) == m


@pytest.mark.parametrize(
    "module,name", [("builtins", "eval"), ("os", "system"), ("builtins", "getattr")]
)
def test_forbidden_globals_never_run(module, name):
    # GLOBAL module name, then REDUCE with one argument: a call if resolved.
    evil = (
        b"\x80\x03("
        + f"c{module}\n{name}\n".encode()
        + b"X\x04\x00\x00\x001+1\x85R"
        + b"K\x00X\x04\x00\x00\x00ping)t."
    )
    with pytest.raises(ProtocolError, match=f"forbidden global {module}.{name}"):
        decoder(b"Z5")(evil)


def test_allowed_globals_decode():
    from ZopeUndo.Prefix import Prefix

    payload = pickle.dumps((1, False, "undoInfo", (0, 20, {"x": {1, 2}})), 3)
    assert decoder(b"Z5")(payload)[3][2] == {"x": {1, 2}}
    payload = pickle.dumps((1, False, "undoInfo", (0, 20, Prefix("/a"))), 2)
    assert isinstance(decoder(b"Z5")(payload)[3][2], Prefix)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80\x03.",
        b"garbage",
        pickle.dumps([1, 2, 3, 4], 3),
        pickle.dumps((1, 2, 3, 4), 3),
    ],
)
def test_malformed_pickle_messages(data):
    with pytest.raises(ProtocolError):
        decoder(b"Z5")(data)


@pytest.mark.parametrize(
    "data", [b"", b"\xc1", msgpack.packb([1, 2]), msgpack.packb((1, 0, 5, ()))]
)
def test_malformed_msgpack_messages(data):
    with pytest.raises(ProtocolError):
        decoder(b"M5")(data)


def test_conflict_error_roundtrip_through_both_encodings():
    from ZODB.POSException import ConflictError, POSKeyError

    exc = ConflictError(oid=b"\0" * 7 + b"\4", serials=(b"\0" * 8, b"\1" * 8))
    exc.class_name = "persistent.mapping.PersistentMapping"
    for protocol in (b"M5", b"Z5"):
        reply = encoder(protocol, server=True)(3, 2, ".reply", reduce_exception(exc))
        _, flag, _, (name, payload) = decoder(protocol)(reply)
        assert flag == 2
        got = exception_from_wire(name, payload)
        assert type(got) is ConflictError
        assert got.oid == exc.oid and tuple(got.serials) == exc.serials
        assert got.class_name == exc.class_name
    got = exception_from_wire(*reduce_exception(POSKeyError(b"\0" * 8)))
    assert type(got) is POSKeyError and got.args == (b"\0" * 8,)
    got = exception_from_wire("os.Whatever", ("x",))
    assert isinstance(got, ServerException)


def test_client_decodes_nested_exceptions_the_server_refuses():
    # FileStorage's undo failure as a pickling server sends it: the state of
    # MultipleUndoErrors holds UndoError objects (ZODB.POSException._recon).
    from ZODB.POSException import MultipleUndoErrors, UndoError

    exc = MultipleUndoErrors([(b"\0" * 8, UndoError("not undoable", b"\0" * 8))])
    reply = encoder(b"Z5", server=True)(5, 2, ".reply", reduce_exception(exc))
    with pytest.raises(ProtocolError, match="forbidden global ZODB.POSException"):
        decoder(b"Z5")(reply)
    _, flag, _, (name, payload) = client_decoder(b"Z5")(reply)
    got = exception_from_wire(name, payload)
    assert type(got) is MultipleUndoErrors
    assert isinstance(got._errs[0][1], UndoError)
    # the client still refuses code execution
    evil = b"\x80\x03(cos\nsystem\nX\x04\x00\x00\x00true\x85RK\x00X\x01\x00\x00\x00xNt."
    with pytest.raises(ProtocolError, match="forbidden global os.system"):
        client_decoder(b"Z5")(evil)


def test_container_subclass_in_transaction_extension_decodes():
    # A dict subclass whose __reduce__ names builtins.dict, as ZODB's
    # iterator tests put in a transaction extension and real ZEO clients
    # pickle as is.
    class Extension(dict):
        def __reduce__(self):
            return (dict, (list(self.items()),))

    message = (0, True, "tpc_begin", (1, b"", b"", Extension(a=1), None, " "))
    data = pickle.dumps(message, 3)
    assert b"builtins\ndict" in data or b"builtins\x94\x8c\x04dict" in data
    decoded = decoder(b"Z5")(data)
    assert decoded[3][3] == {"a": 1} and type(decoded[3][3]) is dict


@pytest.mark.parametrize("name", ["bytes", "bytearray", "eval", "getattr", "open"])
def test_allocating_or_dangerous_builtins_stay_forbidden(name):
    evil = f"\x80\x03(cbuiltins\n{name}\nJ\x00\xe4\x0bT\x85RK\x00X\x01\x00\x00\x00xNt."
    with pytest.raises(ProtocolError, match=f"forbidden global builtins.{name}"):
        decoder(b"Z5")(evil.encode("latin-1"))
