"""The pure connection state machines of zeo.protocol, without any socket.

Each side is fed bytes and asserted on the events and bytes it gives back;
the last tests wire a client session to a server session in memory.
"""

import threading

import pytest
from ZODB.POSException import ConflictError, POSKeyError, ReadOnlyError

from zeo.exceptions import ProtocolError
from zeo.protocol import client_decoder, encoder, frame, server_decoder
from zeo.protocol.client import (
    Announced,
    Broken,
    Callback,
    ClientSession,
    ConnectionLost,
    Pause,
)
from zeo.protocol.server import (
    Call,
    Close,
    Connected,
    Refused,
    ServerSession,
    StatusRequested,
    is_call,
)

OID = b"\0" * 7 + b"\1"
TID = b"\0" * 7 + b"\2"
PROTOCOLS = [b"M5", b"Z5"]


class Slot:
    """A waiter that keeps the first outcome, as the real ones do."""

    def __init__(self, log=None):
        self.outcome = None
        self.log = log

    def set_result(self, result):
        if self.outcome is None:
            self.outcome = ("result", result)
            if self.log is not None:
                self.log.append(("reply", result))

    def set_exception(self, exception):
        if self.outcome is None:
            self.outcome = ("error", exception)


def client_message(protocol, *message):
    return frame(encoder(protocol)(*message))


def server_message(protocol, *message):
    return frame(encoder(protocol, server=True)(*message))


# -- the server side ------------------------------------------------------------


def connected_server(protocol=b"M5", registered=True):
    session = ServerSession(protocol)
    assert list(session.receive(frame(protocol))) == [Connected(protocol)]
    # As ZEOStorage.methods(): register alone before, everything but it after.
    methods = {"loadBefore", "ping", "tpc_begin"}
    session.allow(methods if registered else {"register"}, registered=registered)
    return session


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_server_announces_its_protocol_and_accepts_only_it(protocol):
    session = ServerSession(protocol)
    assert session.greeting() == frame(protocol)
    assert list(session.receive(frame(protocol))) == [Connected(protocol)]
    other = b"Z5" if protocol == b"M5" else b"M5"
    refused = ServerSession(protocol)
    (event,) = refused.receive(frame(other))
    assert type(event) is Close and "msgpack option" in event.reason
    assert list(refused.receive(client_message(other, 1, False, "ping", ()))) == []


def test_server_handshake_in_pieces_and_with_garbage():
    session = ServerSession(b"M5")
    data = frame(b"M5") + client_message(b"M5", 1, False, "register", ("1", False))
    session.allow({"register"}, registered=False)
    events = []
    for byte in data:
        events.extend(session.receive(bytes([byte])))
    assert events == [Connected(b"M5"), Call(1, False, "register", ("1", False))]
    (event,) = ServerSession(b"M5").receive(frame(b"HTTP/1.1 GET /"))
    assert event == Close("bad handshake b'HTTP/1.1 GET /'")


def test_ruok_during_the_handshake_asks_for_a_status_and_ends_the_session():
    session = ServerSession(b"Z5")
    events = list(session.receive(frame(b"ruok") + frame(b"Z5")))
    assert events == [StatusRequested()]
    assert session.status(b'{"1": {}}') == frame(b'{"1": {}}')
    assert list(session.receive(frame(b"Z5"))) == []


def test_oversized_or_undecodable_frames_close_the_connection():
    session = connected_server()
    (event,) = session.receive(b"\xff\xff\xff\xff")
    assert type(event) is Close and "exceeds the limit" in event.reason
    session = connected_server(b"Z5")
    (event,) = session.receive(frame(b"\x80\x03cos\nsystem\n."))
    assert event == Close("forbidden global os.system in a pickle")
    session = connected_server(b"M5")
    (event,) = session.receive(frame(b"\xc1"))
    assert type(event) is Close and "undecodable" in event.reason


def test_before_register_only_register_may_be_called():
    session = connected_server(registered=False)
    (event,) = session.receive(
        client_message(b"M5", 1, False, "loadBefore", (OID, TID))
    )
    assert event == Close("loadBefore called before register")
    session = connected_server(registered=False)
    (event,) = session.receive(client_message(b"M5", 1, False, "eval", ("1+1",)))
    assert event == Close("unknown method 'eval'")


def test_register_widens_the_methods_for_the_next_message_of_the_same_read():
    session = connected_server(registered=False)
    data = client_message(b"M5", 1, False, "register", ("1", False)) + client_message(
        b"M5", 2, False, "ping", ()
    )
    events = session.receive(data)
    assert next(events) == Call(1, False, "register", ("1", False))
    session.allow({"ping"}, registered=True)
    assert next(events) == Call(2, False, "ping", ())
    (event,) = session.receive(client_message(b"M5", 3, False, "register", ("1", 0)))
    assert event == Close("register called twice")


def test_heartbeats_are_ignored_and_bad_arguments_close():
    session = connected_server()
    assert list(session.receive(client_message(b"M5", -1, 0, ".reply", None))) == []
    (event,) = session.receive(
        client_message(b"M5", 4, False, "loadBefore", ("x", TID))
    )
    assert type(event) is Close
    assert "loadBefore: argument 1 must be an 8-byte oid, got str" in event.reason
    assert list(session.receive(client_message(b"M5", 5, False, "ping", ()))) == []


def test_unsupported_calls_two_way_get_an_error_one_way_close():
    session = connected_server()
    (event,) = session.receive(client_message(b"M5", 7, False, "undoLog", (0, 20)))
    assert type(event) is Refused and event.msgid == 7
    assert isinstance(event.error, AttributeError)
    msgid, flag, name, (error, args) = client_decoder(b"M5")(event.reply[4:])
    assert (msgid, flag, name, error) == (7, 2, ".reply", "builtins.AttributeError")
    assert "undoLog is not supported" in args[0]
    (event,) = session.receive(client_message(b"M5", 0, True, "pack", (1.0,)))
    assert event == Close("one-way call pack is not supported by this storage")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_server_replies_errors_and_callbacks_decode_on_the_client(protocol):
    session = ServerSession(protocol)
    decode = client_decoder(protocol)
    assert decode(session.reply(3, (b"data", TID))[4:]) == (
        3,
        0,
        ".reply",
        (b"data", TID),
    )
    sent = decode(session.callback("invalidateTransaction", (TID, [OID]))[4:])
    assert sent[:3] == (0, True, "invalidateTransaction")
    error = decode(session.error(4, POSKeyError(OID))[4:])
    assert error[:3] == (4, 2, ".reply") and error[3][0].endswith("POSKeyError")


def test_unencodable_reply_raises_and_unencodable_error_falls_back_to_its_text():
    session = ServerSession(b"M5")
    with pytest.raises(TypeError):
        session.reply(1, object())
    problem = ValueError("broken")
    problem.detail = object()  # its __dict__ cannot be encoded
    msgid, flag, _, (name, args) = client_decoder(b"M5")(session.error(2, problem)[4:])
    assert (msgid, flag, name, args) == (2, 2, "builtins.ValueError", ("broken",))


def test_a_failed_call_is_an_error_reply_unless_it_was_one_way():
    session = connected_server()
    reply = session.failed(Call(9, False, "ping", ()), ReadOnlyError())
    assert client_decoder(b"M5")(reply[4:])[:2] == (9, 2)
    outcome = session.failed(Call(0, True, "ping", ()), KeyError("x"))
    assert outcome == Close("one-way call ping failed: KeyError: 'x'")
    assert list(session.receive(client_message(b"M5", 1, False, "ping", ()))) == []


# -- the client side --------------------------------------------------------------


def answered_client(protocol=b"M5", operational=True):
    session = ClientSession("server:1")
    assert list(session.receive(frame(protocol))) == [Announced(protocol)]
    assert session.answer(protocol) == frame(protocol)
    if operational:
        assert session.verified() == []
    return session


@pytest.mark.parametrize(
    "announced, answer",
    [(b"M5", b"M5"), (b"Z5", b"Z5"), (b"Z6", b"Z5"), (b"M7", b"M5")],
)
def test_client_answers_zeo5_and_later_servers_in_their_encoding(announced, answer):
    session = ClientSession("server:1")
    assert session.answer(announced) == frame(answer)
    assert session.protocol_version == answer
    decode = server_decoder(answer)
    assert decode(session.call(1, "ping", ())[4:]) == (1, False, "ping", ())
    assert decode(session.one_way("set_client_label", ("x",))[4:])[:2] == (0, True)
    assert decode(session.heartbeat()[4:])[0] == -1


@pytest.mark.parametrize("announced", [b"Z4", b"Z3101", b"X5", b"M", b""])
def test_client_refuses_older_or_unknown_protocols(announced):
    with pytest.raises(ProtocolError):
        ClientSession("server:1").answer(announced)


def test_nothing_is_sent_before_the_handshake():
    with pytest.raises(ProtocolError, match="before the handshake"):
        ClientSession("server:1").call(1, "ping", ())


def test_only_the_first_frame_before_the_answer_is_the_announcement():
    session = ClientSession("server:1")
    events = list(session.receive(frame(b"M5") + frame(b"junk")))
    assert events == [Announced(b"M5")]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_caller_reading_its_own_reply_stops_before_what_is_not_its_business(
    protocol,
):
    """With ``reader`` set, replies the reader may complete pass; a reply to
    another call whose hook must run on the I/O thread is announced by a
    Pause and completed only when the events are resumed (by the loop)."""
    session = answered_client(protocol)
    log = []
    own, load, commit, plain = Slot(log), Slot(log), Slot(log), Slot(log)

    def hook(name):
        def run(value):
            log.append(("hook", name))
            return value

        return run

    session.register(7, "tpc_vote", own, hook("own"))
    session.register((OID, TID), "loadBefore", load, hook("load"), anywhere=True)
    session.register(8, "tpc_finish", commit, hook("commit"))
    session.register(9, "ping", plain, None)
    session.reader = 7
    events = session.receive(
        server_message(protocol, (OID, TID), 0, ".reply", (b"d", TID, None))
        + server_message(protocol, 9, 0, ".reply", None)
        + server_message(protocol, 8, 0, ".reply", TID)
        + server_message(protocol, 7, 0, ".reply", b"voted")
    )
    assert next(events) == Pause(8)
    # Everything before the pause is done, nothing after it.
    assert log == [("hook", "load"), ("reply", (b"d", TID, None)), ("reply", None)]
    assert commit.outcome is None and own.outcome is None
    session.reader = None  # the loop resumes
    assert list(events) == []
    assert log[3:] == [
        ("hook", "commit"),
        ("reply", TID),
        ("hook", "own"),
        ("reply", b"voted"),
    ]


def test_a_reader_completes_its_own_reply_and_stops_at_a_callback():
    session = answered_client(b"M5")
    own = Slot()
    session.register(3, "tpc_finish", own, lambda tid: tid)
    session.reader = 3
    events = session.receive(
        server_message(b"M5", 3, 0, ".reply", TID)
        + server_message(b"M5", 0, 1, "invalidateTransaction", (TID, [OID]))
        + server_message(b"M5", 4, 0, ".reply", None)
    )
    callback = next(events)
    assert type(callback) is Callback and callback.name == "invalidateTransaction"
    assert own.outcome == ("result", TID)
    assert list(events) == []  # the unknown reply 4 is only logged


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_reply_runs_the_hook_then_wakes_every_waiter_of_its_call(protocol):
    session = answered_client(protocol)
    log = []
    first, second = Slot(log), Slot(log)

    def hook(value):
        log.append(("hook", value))
        return value[0]

    msgid = (OID, TID)
    assert session.register(msgid, "loadBefore", first, hook) is True
    # An identical load already on its way is joined, not sent again.
    assert session.register(msgid, "loadBefore", second, None) is False
    reply = server_message(protocol, msgid, 0, ".reply", (b"data", TID, None))
    assert list(session.receive(reply)) == []
    assert log == [
        ("hook", (b"data", TID, None)),
        ("reply", b"data"),
        ("reply", b"data"),
    ]
    assert first.outcome == second.outcome == ("result", b"data")
    assert session.pending == {}


def test_error_replies_become_the_servers_exceptions():
    session = answered_client(b"M5")
    conflict, bad = Slot(), Slot()
    session.register(1, "vote", conflict, None)
    session.register(2, "vote", bad, None)
    payload = {"message": "database conflict", "oid": OID, "serials": (TID, TID)}
    data = server_message(
        b"M5", 1, 2, ".reply", ("ZODB.POSException.ConflictError", payload)
    ) + server_message(b"M5", 2, 2, ".reply", "not a pair")
    assert list(session.receive(data)) == []
    kind, error = conflict.outcome
    assert kind == "error" and isinstance(error, ConflictError) and error.oid == OID
    kind, error = bad.outcome
    assert kind == "error" and isinstance(error, ProtocolError)


def test_a_failing_hook_fails_the_call_and_the_session_goes_on():
    session = answered_client(b"M5")
    waiter, later = Slot(), Slot()

    def hook(value):
        raise ValueError("cache is full")

    session.register(1, "loadBefore", waiter, hook)
    session.register(2, "ping", later, None)
    data = server_message(b"M5", 1, 0, ".reply", None) + server_message(
        b"M5", 2, 0, ".reply", None
    )
    assert list(session.receive(data)) == []
    assert waiter.outcome[0] == "error" and str(waiter.outcome[1]) == "cache is full"
    assert later.outcome == ("result", None)


def test_unknown_replies_are_dropped(caplog):
    session = answered_client(b"M5")
    data = server_message(b"M5", 0, 0, ".reply", None) + server_message(
        b"M5", 99, 0, ".reply", None
    )
    assert list(session.receive(data)) == []
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["reply to unknown call 99 from server:1"]


def test_callbacks_and_replies_take_effect_in_wire_order():
    session = answered_client(b"M5")
    log = []
    session.register(1, "loadBefore", Slot(log), None)
    session.register(2, "loadBefore", Slot(log), None)
    data = b"".join(
        [
            server_message(b"M5", 0, True, "invalidateTransaction", (TID, (OID,))),
            server_message(b"M5", 1, 0, ".reply", "one"),
            server_message(b"M5", 0, True, "info", ({"length": 3},)),
            server_message(b"M5", 2, 0, ".reply", "two"),
        ]
    )
    for event in session.receive(data):
        log.append(event)
    assert log == [
        Callback("invalidateTransaction", (TID, (OID,))),
        ("reply", "one"),
        Callback("info", ({"length": 3},)),
        ("reply", "two"),
    ]


def test_invalidations_are_held_back_until_verified_and_handed_over_in_order():
    session = answered_client(b"Z5", operational=False)
    waiter = Slot()
    session.register(1, "getInvalidations", waiter, None)
    later = b"\0" * 7 + b"\3"
    data = b"".join(
        [
            server_message(b"Z5", 0, True, "invalidateTransaction", (TID, [OID])),
            server_message(b"Z5", 0, True, "info", ({"size": 1},)),
            server_message(b"Z5", 1, 0, ".reply", (TID, [OID])),
            server_message(b"Z5", 0, True, "invalidateTransaction", (later, [])),
        ]
    )
    assert list(session.receive(data)) == [Callback("info", ({"size": 1},))]
    assert waiter.outcome == ("result", (TID, [OID]))
    assert session.verified() == [
        Callback("invalidateTransaction", (TID, [OID])),
        Callback("invalidateTransaction", (later, [])),
    ]
    invalidation = server_message(b"Z5", 0, True, "invalidateTransaction", (later, []))
    assert list(session.receive(invalidation)) == [
        Callback("invalidateTransaction", (later, []))
    ]


def test_malformed_frames_break_the_session():
    session = answered_client(b"Z5")
    (event,) = session.receive(frame(b"\x80\x03cbuiltins\neval\n."))
    assert type(event) is Broken and "eval" in str(event.error)
    (event,) = answered_client(b"M5").receive(b"\xff\xff\xff\xff")
    assert type(event) is Broken and "exceeds the limit" in str(event.error)
    session = answered_client(b"M5")
    ignored = server_message(b"M5", 0, True, "invalidateTransaction", "nope")
    assert list(session.receive(ignored)) == []


def test_losing_the_connection_fails_pending_calls_and_refuses_new_ones():
    session = answered_client(b"M5")
    waiter = Slot()
    session.register(1, "tpc_finish", waiter, None)
    session.lose()
    assert waiter.outcome[0] == "error" and isinstance(
        waiter.outcome[1], ConnectionLost
    )
    with pytest.raises(ConnectionLost, match="server:1"):
        session.register(2, "ping", Slot(), None)


def test_calls_registered_from_many_threads_all_complete():
    session = answered_client(b"M5")
    slots = {}

    def register(first):
        for msgid in range(first, first + 500):
            slots[msgid] = Slot()
            session.register(msgid, "ping", slots[msgid], None)

    threads = [threading.Thread(target=register, args=(n * 500 + 1,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    data = b"".join(server_message(b"M5", m, 0, ".reply", m) for m in slots)
    assert list(session.receive(data)) == []
    assert all(slot.outcome == ("result", m) for m, slot in slots.items())


# -- both sides in memory -----------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_client_and_a_server_session_talk_without_a_socket(protocol):
    server = ServerSession(protocol)
    client = ClientSession("memory")
    (announced,) = client.receive(server.greeting())
    (connected,) = server.receive(client.answer(announced.protocol))
    assert connected == Connected(protocol)
    server.allow({"register"}, registered=False)

    registered = Slot()
    client.register(1, "register", registered, None)
    (call,) = server.receive(client.call(1, "register", ("1", False)))
    assert call == Call(1, False, "register", ("1", False))
    server.allow({"loadBefore"}, registered=True)
    to_client = server.reply(Call(*call).msgid, TID)
    to_client += server.callback("invalidateTransaction", (TID, (OID,)))
    assert list(client.receive(to_client)) == []  # held back: not verified yet
    assert registered.outcome == ("result", TID)
    assert client.verified() == [Callback("invalidateTransaction", (TID, (OID,)))]

    missing = Slot()
    client.register((OID, TID), "loadBefore", missing, None)
    (call,) = server.receive(client.call((OID, TID), "loadBefore", (OID, TID)))
    assert is_call(call) and Call(*call).msgid == (OID, TID)
    assert Call(*call).args == (OID, TID)
    assert list(client.receive(server.failed(call, POSKeyError(OID)))) == []
    kind, error = missing.outcome
    assert kind == "error" and isinstance(error, POSKeyError)
