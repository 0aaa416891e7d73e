"""runzeo serving a RelStorage on PostgreSQL, and several runzeo over one
database: a commit through one reaches the clients of the others."""

from __future__ import annotations

import subprocess
import threading

import pytest
import transaction
from BTrees.Length import Length
from persistent.mapping import PersistentMapping
from ZODB.POSException import ConflictError

import zeo
from tests.relstorage.conftest import runzeo_config
from tests.support import PYTHON, free_port, our_env, wait_until
from zeo.clientstorage.storage import ClientStorage

#: Generous: two servers' polls and a client's loop on a loaded machine.
TIMEOUT = 30


def open_db(server, **options):
    return zeo.DB(server.address, server_sync=True, wait_timeout=TIMEOUT, **options)


def wait_for_tid(server, tid: bytes, what: str = "the writer's commits") -> None:
    """Until *server* has announced *tid* (it polls PostgreSQL for it)."""
    storage = ClientStorage(server.address, server_sync=True, wait_timeout=TIMEOUT)
    try:
        wait_until(
            lambda: storage.lastTransaction() >= tid,
            TIMEOUT,
            message=f"{server.address_text} to see {what}",
        )
    finally:
        storage.close()


def open_db_after(server, writer):
    """A DB on *server* once it has seen everything *writer* committed (a
    DB opened earlier would see no root object yet and create one itself)."""
    wait_for_tid(server, writer.storage.lastTransaction())
    return open_db(server)


def test_runzeo_serves_a_relstorage(servers):
    server = servers.start()
    db = open_db(server)
    try:
        with db.transaction() as connection:
            connection.root()["greeting"] = "hello"
        with db.transaction() as connection:
            assert connection.root()["greeting"] == "hello"
        assert "RelStorage" in server.log_text()
    finally:
        db.close()
    # What the server committed is in PostgreSQL: a second server sees it.
    server.stop()
    second = servers.start()
    db = open_db(second)
    try:
        with db.transaction() as connection:
            assert connection.root()["greeting"] == "hello"
    finally:
        db.close()


def test_a_commit_through_one_server_reaches_clients_of_another(servers):
    first, second = servers.start(), servers.start()
    writer = open_db(first)
    with writer.transaction() as connection:
        connection.root()["box"] = PersistentMapping(value=0)
    reader = open_db_after(second, writer)
    try:
        reader_connection = reader.open()
        try:
            wait_until(
                lambda: _value(reader_connection) == 0,
                TIMEOUT,
                message="the reader to see the box",
            )
            # The reader now has the box in its caches; only an invalidation
            # from its own server can make it see the next value.
            seen = []
            watcher = reader.storage.watch(lambda tid, oids: seen.append(tid))
            with writer.transaction() as connection:
                connection.root()["box"]["value"] = 1
            wait_until(lambda: seen, TIMEOUT, message="a watch callback")
            wait_until(
                lambda: _value(reader_connection) == 1,
                TIMEOUT,
                message="the reader to see the new value",
            )
            watcher.close()
        finally:
            reader_connection.close()
    finally:
        writer.close()
        reader.close()


def _value(connection):
    connection.transaction_manager.begin()
    box = connection.root().get("box")
    return None if box is None else box["value"]


def _conflicting(servers, make, change):
    """Two connections, through two servers, that changed the object
    *make()* at root["box"] from one revision; one's commit is in, and
    two's server has polled past it (the case RelStorage once reported as a
    cache inconsistency: its snapshot no longer held two's base revision)."""
    first, second = servers.start(), servers.start()
    db_one = open_db(first)
    with db_one.transaction() as connection:
        connection.root()["box"] = make()
    db_two = open_db_after(second, db_one)
    one = db_one.open(transaction.TransactionManager())
    two = db_two.open(transaction.TransactionManager())
    for connection in (one, two):
        connection.transaction_manager.begin()
        change(connection.root()["box"], connection is one)
    one.transaction_manager.commit()
    committed = db_one.storage.lastTransaction()
    wait_until(
        lambda: db_two.storage.lastTransaction() >= committed,
        TIMEOUT,
        message="two's server to announce one's commit",
    )
    return db_one, db_two, one, two


def _set_value(box, is_one):
    box["value"] = 1 if is_one else 2


def test_conflicts_across_servers_are_conflict_errors(servers):
    db_one, db_two, one, two = _conflicting(
        servers, lambda: PersistentMapping(value=0), _set_value
    )
    try:
        with pytest.raises(ConflictError) as raised:
            two.transaction_manager.commit()
        assert raised.value.oid == one.root()["box"]._p_oid
        two.transaction_manager.abort()
        wait_until(lambda: _value(two) == 1, TIMEOUT, message="two to see one's")
        one.close()
        two.close()
    finally:
        db_one.close()
        db_two.close()


def test_conflicts_across_servers_are_resolved_first(servers):
    # BTrees' Length resolves concurrent changes: both increments count.
    db_one, db_two, one, two = _conflicting(
        servers, Length, lambda length, is_one: length.change(1 if is_one else 10)
    )
    try:
        two.transaction_manager.commit()
        for connection in (one, two):
            wait_until(
                lambda connection=connection: _length(connection) == 11,
                TIMEOUT,
                message="both increments on both servers",
            )
        one.close()
        two.close()
    finally:
        db_one.close()
        db_two.close()


def _length(connection):
    connection.transaction_manager.begin()
    return connection.root()["box"]()


def test_own_commits_are_not_sent_back_twice(servers):
    # The server's poll sees its own commits too; they are announced once.
    server = servers.start(**{"poll-interval": "0.05"})
    writer, listener = (
        open_db(server),
        ClientStorage(server.address, server_sync=True, wait_timeout=TIMEOUT),
    )
    try:
        tids = []
        done = threading.Event()
        listener.watch(lambda tid, oids: (tids.append(tid), done.set()))
        committed = []
        for value in range(3):
            with writer.transaction() as connection:
                connection.root()["value"] = value
            committed.append(writer.storage.lastTransaction())
        wait_until(lambda: committed[-1] in tids, TIMEOUT, message="the last tid")
        # Let the server poll its own commits back a few times, then a round
        # trip: anything it sent twice would have arrived before the reply.
        wait_until(lambda: _polls(listener) >= 3, TIMEOUT, message="three polls")
        assert done.is_set() and server.is_alive()
        assert [tid for tid in tids if tid >= committed[0]] == committed
    finally:
        writer.close()
        listener.close()


def _polls(storage):
    return storage.server_status().get("external-polls", 0)


def test_a_database_that_cannot_be_reached_is_a_clear_error(tmp_path):
    # No PostgreSQL needed: nothing listens on the port named.
    pytest.importorskip("relstorage")
    port = free_port()
    config = tmp_path / "zeo.conf"
    config.write_text(
        runzeo_config(
            port, f"dbname=nothing host=127.0.0.1 port={free_port()} connect_timeout=5"
        )
    )
    result = subprocess.run(
        [PYTHON, "-m", "zeo.runzeo", "-C", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        env=our_env(),
    )
    assert result.returncode == 1
    assert "runzeo: cannot open the storages" in result.stderr
    assert "Connection refused" in result.stderr


def test_a_conflict_across_servers_brings_the_news_with_it(servers):
    # Polls 60 s apart: no timer brings one's commit to two's clients, only
    # the conflict does, before its ConflictError; so the retry of two's
    # commit reads one's value and goes in (a consumer retries at once: with
    # stale caches each retry conflicted again until the next poll).
    first = servers.start(**{"poll-interval": "60"})
    db_one = open_db(first)
    with db_one.transaction() as connection:
        connection.root()["box"] = PersistentMapping(value=0)
    second = servers.start(**{"poll-interval": "60"})
    db_two = open_db(second)
    try:
        two = db_two.open(transaction.TransactionManager())
        assert _value(two) == 0
        with db_one.transaction() as connection:
            connection.root()["box"]["value"] = 1
        two.root()["box"]["value"] = 2
        with pytest.raises(ConflictError):
            two.transaction_manager.commit()
        two.transaction_manager.abort()
        assert _value(two) == 1
        two.root()["box"]["value"] = 2
        two.transaction_manager.commit()
        assert _value(two) == 2
        two.close()
    finally:
        db_one.close()
        db_two.close()
