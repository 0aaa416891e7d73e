"""Commit lock hand-over, conflict resolution, invalidation queue, read-only."""

import pickle
import time

import pytest
from ZODB.utils import maxtid, z64

from zeo.protocol import frame

from .conftest import ServerError, run_peer_script, ruok, wait_until
from .test_robustness import commit


def connect(raw_clients, server, read_only=False):
    client = raw_clients(server.address)
    client.handshake()
    client.call("register", "1", read_only)
    return client


def test_second_vote_waits_for_the_lock_and_gets_it_in_order(start_server, raw_clients):
    server = start_server()
    first, second, observer = (connect(raw_clients, server) for _ in range(3))
    oid_a, oid_b = first.call("new_oids", 2)
    first.call_one_way("tpc_begin", 1, b"", b"", {}, None, " ")
    first.call_one_way("storea", oid_a, z64, b"from first", 1)
    assert list(first.call("vote", 1)) == []

    second.call_one_way("tpc_begin", 2, b"", b"", {}, None, " ")
    second.call_one_way("storea", oid_b, z64, b"from second", 2)
    second.send_raw(frame(second.encode(50, False, "vote", (2,))))
    wait_until(
        lambda: observer.call("server_status")["waiting"] == 1,
        message="the second vote to queue",
    )
    status = observer.call("server_status")
    assert status["lock_time"] is not None
    assert status["active_txns"] == 2

    first_tid = first.call("tpc_finish", 1)
    # Now the delayed vote reply arrives, after an invalidation for first_tid.
    messages = []
    while True:
        message = second.read_message()
        messages.append(message)
        if message[2] == ".reply":
            break
    assert messages[-1][:2] == (50, 0)
    invalidations = [m for m in messages if m[2] == "invalidateTransaction"]
    assert invalidations and invalidations[0][3][0] == first_tid
    assert list(invalidations[0][3][1]) == [oid_a]
    second_tid = second.call("tpc_finish", 2)
    assert second_tid > first_tid
    assert observer.call("server_status")["waiting"] == 0
    assert observer.call("loadBefore", oid_b, maxtid)[:2] == (
        b"from second",
        second_tid,
    )


def test_get_invalidations_from_the_queue_and_by_age(start_server, raw_clients):
    server = start_server(zeo_options={"invalidation-queue-size": 2})
    client = connect(raw_clients, server)
    oids = client.call("new_oids", 4)
    tids = [commit(client, oid, z64, b"v", txn=i) for i, oid in enumerate(oids)]
    newest, changed = client.call("getInvalidations", tids[2])
    assert newest == tids[3] and list(changed) == [oids[3]]
    # Older than the two queued transactions and no invalidation-age: None.
    assert client.call("getInvalidations", tids[0]) is None
    assert client.call("getInvalidations", tids[3]) == (tids[3], ())
    server.stop()

    # With invalidation-age the storage is iterated instead.  The restarted
    # server also seeds its queue from the FileStorage.
    aged = start_server(
        data_path=server.data_path,
        zeo_options={"invalidation-queue-size": 2, "invalidation-age": 3600},
    )
    client = connect(raw_clients, aged)
    newest, changed = client.call("getInvalidations", tids[0])
    assert newest == tids[3]
    assert sorted(changed) == sorted(oids[1:])
    newest, changed = client.call("getInvalidations", tids[2])
    assert (newest, list(changed)) == (tids[3], [oids[3]])


def test_read_only_server(start_server, raw_clients):
    server = start_server(zeo_options={"read-only": "true"})
    client = raw_clients(server.address)
    client.handshake()
    with pytest.raises(ServerError, match="ReadOnlyError"):
        client.call("register", "1", False)
    assert client.call("register", "1", True) is not None
    with pytest.raises(ServerError, match="ReadOnlyError"):
        client.call("new_oids")
    assert client.call("lastTransaction") is not None
    client.call_one_way("tpc_begin", 1, b"", b"", {}, None, " ")
    assert client.is_closed_by_server()


def test_new_oid_which_zeo_forgot(start_server, raw_clients):
    client = connect(raw_clients, start_server())
    first, second = client.call("new_oid"), client.call("new_oid")
    assert len(first) == 8 and second > first


def test_shared_blob_file_name_with_a_path_is_refused(
    start_server, raw_clients, tmp_path
):
    server = start_server(blob_dir=tmp_path / "blobs")
    client = connect(raw_clients, server)
    oid = client.call("new_oids", 1)[0]
    client.call_one_way("tpc_begin", 1, b"", b"", {}, None, " ")
    client.call_one_way("storeBlobShared", oid, z64, b"data", "../../etc/passwd.tmp", 1)
    assert client.is_closed_by_server()
    server.wait_for_log("refused storeBlobShared file name")
    other = connect(raw_clients, server)
    assert other.call("server_status")["active_txns"] == 0


COUNTER_SCRIPT = """
import json, threading, time
import transaction, ZEO
from BTrees.Length import Length

address = ("127.0.0.1", {port})
# server_sync: a transaction of the second database must see the first
# one's commit (its invalidation may otherwise still be on the way).
dbs = [
    ZEO.DB(address, blob_dir={blob_dir!r} + str(i), server_sync=True)
    for i in range(2)
]
with dbs[0].transaction() as connection:
    connection.root()["length"] = Length(0)
managers = [transaction.TransactionManager() for _ in dbs]
connections = [db.open(manager) for db, manager in zip(dbs, managers)]
for manager in managers:
    manager.begin()  # a begin syncs (opening a connection does not)
# Both read the same state, both change it: the second commit conflicts and
# Length's _p_resolveConflict merges the two increments.
for connection in connections:
    connection.root()["length"].change(5)
for manager in managers:
    manager.commit()
with dbs[0].transaction() as connection:
    value = connection.root()["length"].value
print("RESULT " + json.dumps(value))
for db in dbs:
    db.close()
"""


@pytest.mark.interop
@pytest.mark.parametrize(
    "client_side", [False, True], ids=["server-resolves", "client-resolves"]
)
def test_conflict_resolution(client_side, start_server, zeo_peer, tmp_path):
    server = start_server(
        blob_dir=tmp_path / "server-blobs",
        zeo_options={"client-conflict-resolution": str(client_side).lower()},
    )
    script = COUNTER_SCRIPT.format(port=server.port, blob_dir=str(tmp_path / "b"))
    assert run_peer_script(zeo_peer, script) == 10
    status = ruok(server.address)[1]["1"]
    if client_side:
        assert status["conflicts"] >= 1
    else:
        assert status["conflicts_resolved"] >= 1


SHARED_BLOB_SCRIPT = """
import json, transaction, ZEO
from ZODB.blob import Blob
db = ZEO.DB(("127.0.0.1", {port}), blob_dir={blob_dir!r}, shared_blob_dir=True)
big = bytes(range(256)) * 20000  # 5 MB
with db.transaction() as connection:
    connection.root()["blob"] = Blob(big)
with db.transaction() as connection:
    with connection.root()["blob"].open() as f:
        same = f.read() == big
db.close()
other = ZEO.DB(("127.0.0.1", {port}), blob_dir={other_dir!r})
with other.transaction() as connection:
    with connection.root()["blob"].open() as f:
        streamed = f.read() == big
other.close()
print("RESULT " + json.dumps([same, streamed]))
"""


@pytest.mark.interop
def test_shared_blob_dir_and_a_large_streamed_blob(start_server, zeo_peer, tmp_path):
    server_blobs = tmp_path / "server-blobs"
    server = start_server(blob_dir=server_blobs)
    script = SHARED_BLOB_SCRIPT.format(
        port=server.port,
        blob_dir=str(server_blobs),
        other_dir=str(tmp_path / "client-cache"),
    )
    assert run_peer_script(zeo_peer, script) == [True, True]


ROOT_RECORD = pickle.dumps(("persistent.mapping", "PersistentMapping"), 3) + (
    pickle.dumps({"data": {}}, 3)
)


@pytest.mark.parametrize("blobs", [False, True], ids=["filestorage", "blobstorage"])
@pytest.mark.parametrize("gc", [None, False], ids=["gc", "no-gc"])
def test_pack_with_and_without_garbage_collection(
    start_server, raw_clients, tmp_path, gc, blobs
):
    # <blobstorage> wraps the FileStorage and its pack() takes no gc
    # argument: the choice must reach the wrapped storage all the same.
    blob_dir = tmp_path / "blobs" if blobs else None
    client = connect(raw_clients, start_server(blob_dir=blob_dir))
    commit(client, z64, z64, ROOT_RECORD, txn=1)
    oid = client.call("new_oids", 1)[0]  # never referenced from the root
    first = commit(client, oid, z64, b"v1", txn=2)
    second = commit(client, oid, first, b"v2", txn=3)
    pack_time = time.time() + 1  # after both commits
    if gc is None:
        assert client.call("pack", pack_time, 1) is None
    else:
        # zeopapa's extension: a third argument, gc=False.
        assert client.call("pack", pack_time, 1, gc) is None
    with pytest.raises(ServerError, match="POSKeyError"):
        client.call("loadSerial", oid, first)
    if gc is None:
        with pytest.raises(ServerError, match="POSKeyError"):
            client.call("loadSerial", oid, second)
    else:
        assert client.call("loadSerial", oid, second) == b"v2"


def test_storages_are_separate_and_empty_transactions_are_broadcast(
    tmp_path, raw_clients
):
    from tests.conftest import free_port

    from .conftest import RunningServer, server_config

    port = free_port()
    server = RunningServer(
        tmp_path,
        server_config(
            f"127.0.0.1:{port}",
            storage_section="<mappingstorage 1>\n</mappingstorage>\n"
            "<mappingstorage second>\n</mappingstorage>",
        ),
        ("127.0.0.1", port),
    )
    try:
        server.start()
        first = raw_clients(server.address)
        first.handshake()
        first.call("register", "1", False)
        watcher = raw_clients(server.address)
        watcher.handshake()
        watcher.call("register", "1", False)
        other_storage = raw_clients(server.address)
        other_storage.handshake()
        other_storage.call("register", "second", False)
        unknown = raw_clients(server.address)
        unknown.handshake()
        with pytest.raises(ServerError, match="ValueError"):
            unknown.call("register", "third", False)

        # An empty transaction still reaches every other client of storage 1.
        first.call_one_way("tpc_begin", 1, b"", b"", {}, None, " ")
        assert list(first.call("vote", 1)) == []
        tid = first.call("tpc_finish", 1)
        name, args = None, None
        while name != "invalidateTransaction":
            _, _, name, args = watcher.read_message()
        assert args[0] == tid and list(args[1]) == []
        # The client of the other storage heard nothing and sees no change.
        assert other_storage.call("lastTransaction") != tid
        assert other_storage.call("ping") is None
        assert watcher.call("ping") is None
        assert [m[2] for m in other_storage.received] == []
    finally:
        server.stop()


def test_a_zope_undo_prefix_passes_the_pickle_allow_list(start_server, raw_clients):
    from ZopeUndo.Prefix import Prefix

    server = start_server(msgpack=False)
    client = connect(raw_clients, server)
    commit(client, z64, z64, ROOT_RECORD, txn=1)
    # Zope passes a Prefix inside the undoInfo specification.  Whatever the
    # storage makes of it (FileStorage's bytes descriptions do not compare
    # with Prefix's str paths), the frame decodes and the session goes on:
    # a forbidden global would have closed the connection instead.
    try:
        result = client.call("undoInfo", 0, 10, {"description": Prefix("/site")})
    except ServerError as error:
        result = error.args[0][0]
    assert result in ([], "builtins.TypeError")
    assert client.call("ping") is None
    assert "forbidden global" not in server.log_text()
