"""Faults: the server killed mid-stream, a client that votes and stalls."""

import threading

import pytest
from ZODB.FileStorage import FileStorage
from ZODB.utils import z64

from .conftest import wait_until
from .test_robustness import commit

pytestmark = pytest.mark.slow


def test_sigkill_during_commits_loses_nothing_committed(
    start_server, raw_clients, tmp_path
):
    data_path = tmp_path / "Data.fs"
    server = start_server(data_path=data_path)
    client = raw_clients(server.address)
    client.handshake()
    client.call("register", "1", False)
    seen = []  # tids returned by tpc_finish
    stopped = threading.Event()

    def commit_forever():
        txn = 0
        try:
            while True:
                txn += 1
                oid = client.call("new_oids", 1)[0]
                seen.append(commit(client, oid, z64, b"x" * 2000, txn=txn))
        except (OSError, EOFError):
            pass  # the server died under us
        finally:
            stopped.set()

    worker = threading.Thread(target=commit_forever, daemon=True)
    worker.start()
    wait_until(lambda: len(seen) >= 40, message="40 commits")
    assert server.kill() == -9
    assert stopped.wait(60), "the committing client did not notice the kill"
    assert seen, "nothing was committed"

    # The restarted server opens the same file and serves every seen tid.
    restarted = start_server(data_path=data_path)
    reader = raw_clients(restarted.address)
    reader.handshake()
    last = reader.call("register", "1", False)
    assert last >= seen[-1]
    restarted.stop()

    # Check the file itself: every record readable, every transaction
    # complete ('p' after a pack, ' ' otherwise), and every seen tid there.
    from ZODB.scripts.fstest import check

    check(str(data_path))
    storage = FileStorage(str(data_path), read_only=True)
    try:
        stored = []
        for transaction in storage.iterator():
            assert transaction.status in (" ", "p")
            for record in transaction:
                assert storage.loadSerial(record.oid, record.tid) == record.data
            stored.append(transaction.tid)
    finally:
        storage.close()
    missing = set(seen) - set(stored)
    assert not missing, f"{len(missing)} committed transactions were lost"
    assert stored == sorted(stored)


def test_client_that_votes_and_stalls_is_cut_off(start_server, raw_clients):
    server = start_server(zeo_options={"transaction-timeout": 2})
    staller = raw_clients(server.address)
    staller.handshake()
    staller.call("register", "1", False)
    oid = staller.call("new_oids", 1)[0]
    staller.call_one_way("tpc_begin", 1, b"", b"", {}, None, " ")
    staller.call_one_way("storea", oid, z64, b"never committed", 1)
    staller.call("vote", 1)  # holds the commit lock, then says nothing

    # A second client's vote waits for the lock, and gets it once the
    # staller has been disconnected.
    other = raw_clients(server.address)
    other.handshake()
    other.call("register", "1", False)
    other_oid = other.call("new_oids", 1)[0]
    tid = commit(other, other_oid, z64, b"committed", txn=2)

    assert staller.is_closed_by_server()
    server.wait_for_log("transaction timeout after 2 seconds")
    assert other.call("loadBefore", other_oid, b"\xff" * 8)[:2] == (
        b"committed",
        tid,
    )
    # The staller's record was never committed.
    with pytest.raises(Exception, match="POSKeyError"):
        other.call("loadBefore", oid, b"\xff" * 8)
