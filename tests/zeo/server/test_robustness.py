"""Handshake rules and bad input against a live server.

After every bad input the offending connection must be closed, a clear line
logged, and another client must still be served the unchanged data.
"""

import os
import pickle
import struct

import pytest
from ZODB.utils import maxtid, p64, z64

from zeo.protocol import frame

from .conftest import ServerError, ruok

ORIGINAL = b"original record"


def commit(client, oid, serial, data, txn=1):
    """One transaction storing *data* at *oid*; returns the new tid."""
    client.call_one_way("tpc_begin", txn, b"", b"", {}, None, " ")
    client.call_one_way("storea", oid, serial, data, txn)
    client.call("vote", txn)
    return client.call("tpc_finish", txn)


@pytest.fixture(params=[True, False], ids=["msgpack", "pickle"])
def server(request, start_server, raw_clients):
    """A server holding ORIGINAL at oid 0, committed by a first client."""
    running = start_server(msgpack=request.param)
    client = raw_clients(running.address)
    client.handshake()
    client.call("register", "1", False)
    running.tid = commit(client, z64, z64, ORIGINAL)
    client.close()
    return running


def assert_still_serving(server, raw_clients):
    """Another client registers, reads the data unchanged and commits."""
    client = raw_clients(server.address)
    client.handshake()
    assert client.call("register", "1", False) is not None
    data, start, end = client.call("loadBefore", z64, maxtid)
    assert data == ORIGINAL
    assert end is None
    oid = client.call("new_oids")[0]
    commit(client, oid, z64, b"a new object", txn=77)
    assert client.call("loadBefore", oid, maxtid)[0] == b"a new object"
    assert client.call("loadBefore", z64, maxtid)[0] == ORIGINAL


def registered(server, raw_clients):
    client = raw_clients(server.address)
    client.handshake()
    client.call("register", "1", False)
    return client


# -- handshake -----------------------------------------------------------------


def test_announces_msgpack_by_default_and_pickle_when_asked(start_server, raw_clients):
    default = start_server(msgpack=None)
    assert raw_clients(default.address).announced == b"M5"
    pickle_server = start_server(msgpack=False)
    assert raw_clients(pickle_server.address).announced == b"Z5"


def test_reply_in_the_other_encoding_is_refused(server, raw_clients):
    client = raw_clients(server.address)
    other = b"Z5" if client.announced == b"M5" else b"M5"
    client.send_raw(frame(other))
    assert client.is_closed_by_server()
    server.wait_for_log("but this server speaks only")
    assert_still_serving(server, raw_clients)


def test_unknown_protocol_version_is_refused(server, raw_clients):
    client = raw_clients(server.address)
    client.send_raw(frame(client.announced[:1] + b"4"))
    assert client.is_closed_by_server()
    server.wait_for_log("bad handshake")
    assert_still_serving(server, raw_clients)


# -- framing -----------------------------------------------------------------------


def test_random_bytes_frame(server, raw_clients):
    client = registered(server, raw_clients)
    client.send_raw(frame(os.urandom(300)))
    assert client.is_closed_by_server()
    assert_still_serving(server, raw_clients)


def test_random_bytes_stream(server, raw_clients):
    client = raw_clients(server.address)
    client.handshake()
    # Arbitrary bytes: whatever length words they contain, the server must
    # either refuse them or wait; closing our side must leave it healthy.
    client.send_raw(os.urandom(5000))
    client.close()
    assert_still_serving(server, raw_clients)


def test_truncated_frame_then_close(server, raw_clients):
    client = registered(server, raw_clients)
    client.send_raw(struct.pack(">I", 1000) + b"x" * 10)
    client.close()
    assert_still_serving(server, raw_clients)


def test_oversized_length_word(server, raw_clients):
    client = registered(server, raw_clients)
    client.send_raw(b"\xff\xff\xff\xff" + b"x" * 100)
    assert client.is_closed_by_server()
    server.wait_for_log("exceeds the limit")
    assert_still_serving(server, raw_clients)


# -- messages ------------------------------------------------------------------------


def test_call_before_register(server, raw_clients):
    client = raw_clients(server.address)
    client.handshake()
    client.send_raw(frame(client.encode(1, False, "loadBefore", (z64, maxtid))))
    assert client.is_closed_by_server()
    server.wait_for_log("loadBefore called before register")
    assert_still_serving(server, raw_clients)


def test_unknown_method(server, raw_clients):
    client = registered(server, raw_clients)
    client.send_raw(frame(client.encode(5, False, "shutdown_everything", ())))
    assert client.is_closed_by_server()
    server.wait_for_log("unknown method 'shutdown_everything'")
    assert_still_serving(server, raw_clients)


@pytest.mark.parametrize(
    "name, args",
    [
        ("loadBefore", ("not an oid", 5)),
        ("loadBefore", (z64,)),
        ("storea", (z64, z64, b"data", 1, "extra")),
        ("new_oids", ("many",)),
    ],
)
def test_wrong_argument_types_or_arity(server, raw_clients, name, args):
    client = registered(server, raw_clients)
    client.send_raw(frame(client.encode(9, False, name, args)))
    assert client.is_closed_by_server()
    server.wait_for_log(f"bad arguments: {name}")
    assert_still_serving(server, raw_clients)


def test_one_way_call_that_raises(server, raw_clients):
    client = registered(server, raw_clients)
    # storea without tpc_begin: StorageTransactionError, and no reply to
    # carry it, so the connection is closed.
    client.call_one_way("storea", z64, server.tid, b"evil", 42)
    assert client.is_closed_by_server()
    server.wait_for_log("one-way call storea failed")
    assert_still_serving(server, raw_clients)


def test_error_in_a_call_is_a_reply_not_a_disconnect(server, raw_clients):
    client = registered(server, raw_clients)
    with pytest.raises(ServerError) as info:
        client.call("loadBefore", p64(12345), maxtid)
    name, payload = info.value.args[0]
    assert name == "ZODB.POSException.POSKeyError"
    assert client.call("ping") is None  # still connected


def test_disconnect_while_holding_the_lock_frees_it(server, raw_clients):
    holder = registered(server, raw_clients)
    holder.call_one_way("tpc_begin", 5, b"", b"", {}, None, " ")
    holder.call_one_way("storea", z64, server.tid, b"never committed", 5)
    holder.call("vote", 5)  # holds the commit lock now
    holder.send_raw(frame(os.urandom(50)))
    assert holder.is_closed_by_server()
    # The lock is free and the half transaction gone: a commit goes through.
    assert_still_serving(server, raw_clients)


@pytest.mark.parametrize(
    "module, name, argument",
    [("os", "system", "touch {path}"), ("builtins", "eval", "open('{path}', 'w')")],
)
def test_forbidden_pickle_global_runs_nothing(
    start_server, raw_clients, tmp_path, module, name, argument
):
    running = start_server(msgpack=False)
    target = tmp_path / "proof-of-execution"

    # A protocol-0 pickle: GLOBAL module.name, MARK, argument, TUPLE, REDUCE.
    # A plain pickle.loads of it would run the call (checked below on a
    # harmless target), ZEO's own unpickler admits builtins.eval.
    def evil_pickle(path):
        return f"c{module}\n{name}\n(V{argument.format(path=path)}\ntR.".encode()

    check_target = tmp_path / "plain-unpickler-ran-it"
    pickle.loads(evil_pickle(str(check_target)))
    assert check_target.exists()
    payload = evil_pickle(str(target))
    client = raw_clients(running.address)
    client.handshake()
    client.send_raw(frame(payload))
    assert client.is_closed_by_server()
    running.wait_for_log(f"forbidden global {module}.{name}")
    assert not target.exists()
    # And the same inside a well-formed message after register.
    client = raw_clients(running.address)
    client.handshake()
    client.call("register", "1", False)
    assert client.call("ping") is None
    client.send_raw(frame(payload))
    assert client.is_closed_by_server()
    assert not target.exists()
    other = raw_clients(running.address)
    other.handshake()
    assert other.call("register", "1", False) is not None
    assert other.call("ping") is None


def test_ruok_probes_stay_out_of_the_info_log(start_server, raw_clients):
    server = start_server()
    for _ in range(3):
        announced, status = ruok(server.address)
        assert announced == b"M5" and status["1"]["connections"] == 0
    # A real client connecting afterwards is logged at INFO; the probes not.
    client = raw_clients(server.address)
    client.handshake()
    client.call("register", "1", False)
    server.wait_for_log("connected (M5)")
    network_info = [
        line.split(" zeo.storageserver.net ", 1)[1]
        for line in server.log_text().splitlines()
        if " INFO zeo.storageserver.net " in line
    ]
    assert network_info[0].startswith("listening on")
    assert [line.split(") ", 1)[1] for line in network_info[1:]] == ["connected (M5)"]
    assert "ruok status request" in server.log_text()  # at DEBUG
