"""User code from README.rst and docs/zeo-client.rst, checked by mypy.

Not a test module (pytest does not collect it and nothing calls these
functions): ``make lint`` type-checks it, so a change that breaks the
documented use of ``zeo`` fails there.  ``assert_type`` pins what the
public methods return; a ``# type: ignore[...]`` marks a call mypy must
reject (``warn_unused_ignores`` fails the check if it stops rejecting it).
"""

from __future__ import annotations

import threading
from typing import Any, assert_type

import transaction

import zeo
from zeo.clientstorage import ClientStorage
from zeo.clientstorage.iterators import TransactionIterator, TransactionRecord
from zeo.clientstorage.watch import Watch


def readme_client() -> None:
    db = zeo.DB(("127.0.0.1", 8100), cache_size=50 << 20)
    with db.transaction() as conn:
        conn.root()["runs"] = {"1234": "queued"}

    storage = zeo.client(8100, cache="var/client.zec", read_only_fallback=True)
    assert_type(storage, ClientStorage)
    watch = storage.watch(lambda tid, oids: print("changed", oids))  # no polling
    assert_type(watch, Watch)
    storage.ping()
    status = storage.server_status()
    assert_type(status, dict[str, Any])
    watch.close()
    storage.close()


def watch_instead_of_polling(db: Any, storage: ClientStorage, queue_oid: bytes) -> None:
    changed = threading.Event()
    handle = storage.watch(lambda tid, oids: changed.set(), [queue_oid])
    with handle:
        changed.wait(60)
    handle.close()

    def on_commit(tid: bytes, oids: list[bytes]) -> None:
        print(tid.hex(), [oid.hex() for oid in oids])

    storage.watch(on_commit, oids=None).unwatch()
    storage.watch(lambda tid: None)  # type: ignore[arg-type,misc]


def storage_api(storage: ClientStorage) -> None:
    """The IStorage side, as ZODB calls it."""
    oid = storage.new_oid()
    assert_type(oid, bytes)
    last = storage.lastTransaction()
    assert_type(last, bytes)
    data, serial = storage.load(oid)
    assert_type(data, bytes)
    revision = storage.loadBefore(oid, last)
    if revision is not None:
        data, start, end = revision
        assert_type(end, bytes | None)
    assert_type(storage.loadSerial(oid, serial), bytes)
    assert_type(storage.history(oid, size=3), list[dict[str, Any]])
    assert_type(storage.undoLog(0, -20), list[dict[str, Any]])
    assert_type(
        storage.undoInfo(specification={"user_name": "me"}), list[dict[str, Any]]
    )
    assert_type(storage.isReadOnly(), bool)
    assert_type(storage.is_connected(test=True), bool)
    storage.prefetch([oid], last)
    storage.load("not bytes")  # type: ignore[arg-type]

    txn = transaction.TransactionMetaData()
    storage.tpc_begin(txn)
    storage.store(oid, serial, b"state", "", txn)
    assert_type(storage.tpc_vote(txn), list[bytes])
    assert_type(storage.tpc_finish(txn, lambda tid: None), bytes)
    storage.tpc_abort(txn)

    transactions = storage.iterator(start=None, stop=last)
    assert_type(transactions, TransactionIterator)
    for record in transactions:
        assert_type(record, TransactionRecord)
    transactions.close()

    storage.pack(gc=False)
    if storage.blob_dir is not None:
        assert_type(storage.loadBlob(oid, serial), str)
        with storage.openCommittedBlobFile(oid, serial) as blob_file:
            assert_type(blob_file.read(), bytes)
    storage.close()


def constructor_options() -> ClientStorage:
    storage = ClientStorage(
        [("127.0.0.1", 8100), "/run/zeo.sock"],
        storage="1",
        cache_size=200 << 20,
        cache="/var/cache/app/client-1.zec",
        blob_dir="/var/cache/app/blobs",
        read_only_fallback=True,
        wait_timeout=30,
    )
    ClientStorage(8100, cache_size="20MB")  # type: ignore[arg-type]
    return storage
