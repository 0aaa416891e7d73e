"""Fuzzing what a zeo server or client reads from the network.

Frames, both encodings on both sides, and the two connection state
machines of ``zeo.protocol``: for any bytes, only ``ProtocolError`` (or a
``Close``/``Broken`` event) comes out, memory held stays bounded, and a
call reaches a storage only when its arguments fit its signature.
"""

import pickle
import pickletools
import struct

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz.checks import (
    METHODS,
    check_client_session,
    check_frame_decoder_bounded,
    check_message_decoder,
    check_server_session,
    server_events,
)
from tests.fuzz.streams import chunks
from zeo.exceptions import ProtocolError
from zeo.protocol import FrameDecoder, decoder, encoder, frame
from zeo.protocol.client import ClientSession
from zeo.protocol.marshal import ALLOWED_GLOBALS, CLIENT_ALLOWED_GLOBALS
from zeo.protocol.server import (
    Call,
    Close,
    Connected,
    Refused,
    ServerSession,
    StatusRequested,
    is_call,
)
from zeo.protocol.signatures import CHECKERS

ENCODINGS = st.sampled_from([b"M5", b"Z5"])

# Values of the shapes a wire message may carry, nested a little.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.binary(max_size=40),
    st.binary(min_size=8, max_size=8),
    st.text(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=8), inner, max_size=4),
    ),
    max_leaves=12,
)
messages = st.tuples(
    st.one_of(st.integers(min_value=-2, max_value=2**31), values),
    st.sampled_from([0, 1, 2, True, False]),
    st.one_of(st.sampled_from(METHODS + [".reply"]), st.text(max_size=30)),
    st.one_of(st.lists(values, max_size=6).map(tuple), values),
)


# -- frames -----------------------------------------------------------------


@given(st.lists(st.binary(max_size=300), max_size=8), st.lists(st.integers(0, 5000)))
def test_frames_come_out_as_sent_however_the_stream_is_cut(payloads, cuts):
    stream = b"".join(frame(payload) for payload in payloads)
    decoder_ = FrameDecoder()
    received = []
    for piece in chunks(stream, cuts):
        received.extend(decoder_.feed(piece))
    assert received == payloads
    assert decoder_.pending == 0


@given(st.lists(st.binary(max_size=64), max_size=20))
@example([struct.pack(">I", 2**32 - 1)])
def test_random_bytes_never_make_the_frame_decoder_hold_more_than_a_frame(pieces):
    check_frame_decoder_bounded(pieces)


# -- message decoders -------------------------------------------------------


# Found by atheris: 37 bytes naming memo index 0x4D4D4D4D made CPython's
# unpickler grow its memo to twice that (20 GB peak RSS, 100 s).
HUGE_MEMO_INDEX = b"M" * 9 + b"r" + b"M" * 27


@given(ENCODINGS, st.booleans(), st.binary(max_size=200))
@example(b"Z5", False, HUGE_MEMO_INDEX)
@example(b"Z5", True, HUGE_MEMO_INDEX)
def test_any_bytes_decode_to_a_message_or_a_protocol_error(protocol, client, data):
    check_message_decoder(protocol, client, data)


@pytest.mark.parametrize(
    "data",
    [
        HUGE_MEMO_INDEX,
        b"\x80\x03N" + b"r" + (2**31 - 1).to_bytes(4, "little") + b".",
        b"\x80\x03N" + b"p99999999999\n" + b".",  # PUT, decimal index
    ],
)
def test_a_pickle_naming_a_memo_index_beyond_itself_is_refused_unloaded(data):
    for client in (False, True):
        with pytest.raises(ProtocolError, match="memo index"):
            decoder(b"Z5", client=client)(data)


def test_a_pickle_with_many_memo_entries_still_decodes():
    # Over 256 memoized objects: the pickler uses LONG_BINPUT.
    message = (
        7,
        False,
        "prefetch",
        (tuple(bytes([i % 256, i // 256]) * 4 for i in range(600)),),
    )
    data = pickle.dumps(message, 3)
    assert any(op.name == "LONG_BINPUT" for op, _, _ in pickletools.genops(data))
    assert decoder(b"Z5")(data) == message


@given(ENCODINGS, messages)
def test_encodable_messages_come_back_equal_or_are_refused(protocol, message):
    try:
        data = encoder(protocol)(*message)
    except (TypeError, ValueError, OverflowError, pickle.PicklingError):
        return  # not something a peer can send in this encoding
    assert decoder(protocol)(data) == message


def _pickle_naming(module, name):
    """A protocol-3 pickle of ``(1, False, "ping", (module.name,))``."""
    return (
        b"\x80\x03("  # PROTO 3, MARK
        + b"K\x01\x89X\x04\x00\x00\x00ping"  # 1, False, "ping"
        + b"c"
        + module.encode()
        + b"\n"
        + name.encode()
        + b"\n"  # GLOBAL module name
        + b"\x85t."  # TUPLE1, TUPLE, STOP
    )


identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.]{0,20}", fullmatch=True)


@given(
    st.one_of(identifiers, st.sampled_from(["builtins", "os", "posix", "sys"])),
    identifiers,
)
@example("builtins", "eval")
@example("os", "system")
@example("builtins", "bytes")
@example("builtins", "getattr")
@example("subprocess", "Popen")
def test_a_pickle_may_name_only_allowed_globals(module, name):
    data = _pickle_naming(module, name)
    for client, allowed in ((False, ALLOWED_GLOBALS), (True, CLIENT_ALLOWED_GLOBALS)):
        try:
            message = decoder(b"Z5", client=client)(data)
        except ProtocolError:
            assert (module, name) not in allowed
            continue
        assert (module, name) in allowed
        assert message[3] == (allowed[(module, name)],)


# -- the server's session ---------------------------------------------------


@given(ENCODINGS, st.lists(st.binary(max_size=120), max_size=10))
def test_the_server_session_turns_any_bytes_into_known_events(protocol, pieces):
    check_server_session(protocol, pieces)


@given(
    ENCODINGS,
    st.lists(
        st.tuples(
            st.integers(min_value=-1, max_value=1000),
            st.booleans(),
            st.sampled_from(METHODS + ["eval", "__init__", ""]),
            st.lists(values, max_size=6).map(tuple),
        ),
        max_size=12,
    ),
    st.lists(st.integers(0, 4000), max_size=5),
    # Most calls are refused before register: begin with one, often well formed.
    st.one_of(
        st.none(),
        st.tuples(st.text(max_size=3), values),
        st.lists(values, max_size=3).map(tuple),
    ),
)
@example(b"M5", [(2, False, "ping", ())], [], ("1", False))
@example(b"Z5", [(2, False, "ping", ())], [7], ("1", 0, 3))
@example(b"M5", [(2, True, "undoLog", ())], [], ("1", False))
def test_a_call_comes_out_only_when_allowed_and_its_arguments_fit(
    protocol, calls, cuts, register
):
    session = ServerSession(protocol)
    encode = encoder(protocol)
    stream = frame(protocol)
    sent = []
    if register is not None:
        calls = [(0, False, "register", register)] + calls
    for msgid, one_way, name, args in calls:
        try:
            stream += frame(encode(msgid, one_way, name, args))
        except (TypeError, ValueError, OverflowError):
            continue
        sent.append(name)
    events = server_events(session, chunks(stream, cuts))
    registered = False
    for event in events:
        if is_call(event):
            call = Call(*event)
            assert CHECKERS[call.name](call.args) is None
            assert registered or call.name == "register"
            assert not (registered and call.name == "register")
            registered = True
        elif type(event) is Refused:
            assert registered and isinstance(event.error, AttributeError)
    assert len([e for e in events if is_call(e) or type(e) is Refused]) <= len(sent)


@given(st.binary(max_size=200))
def test_any_handshake_is_accepted_only_when_it_is_the_announced_protocol(data):
    for protocol in (b"M5", b"Z5"):
        session = ServerSession(protocol)
        events = list(session.receive(frame(data)))
        assert len(events) == 1
        (event,) = events
        if data == protocol:
            assert event == Connected(protocol)
        elif data == b"ruok":
            assert event == StatusRequested()
        else:
            assert type(event) is Close


# -- the client's session ---------------------------------------------------


@given(
    ENCODINGS,
    st.lists(st.one_of(st.binary(max_size=100), messages), max_size=10),
    st.booleans(),
)
@example(b"M5", [({}, 0, ".reply", ())], True)  # found: an unhashable msgid
def test_the_client_session_survives_anything_a_server_sends(
    protocol, frames, operational
):
    encode = encoder(protocol, server=True)
    stream = b""
    for item in frames:
        if isinstance(item, bytes):
            stream += frame(item)
            continue
        try:
            stream += frame(encode(*item))
        except (TypeError, ValueError, OverflowError, pickle.PicklingError):
            continue
    check_client_session(protocol, stream, operational)


@given(st.binary(max_size=30))
def test_the_client_answers_only_zeo5_or_later(announced):
    session = ClientSession("fuzz")
    try:
        answer = session.answer(announced)
    except ProtocolError:
        return
    assert announced[:1] in (b"M", b"Z") and announced[1:] >= b"5"
    assert answer == frame(announced[:1] + b"5")
