"""Closing a ClientStorage while threads wait to commit."""

import threading

import pytest
from ZODB.Connection import TransactionMetaData

from tests.zeo.client.conftest import wait_until
from zeo.exceptions import ClientDisconnected


def test_close_fails_a_commit_waiting_for_another_threads_transaction(
    server, client_factory
):
    storage = client_factory(server.addr)
    holder = TransactionMetaData()
    storage.tpc_begin(holder)  # never finished, as MTStorage threads may do
    outcome = {}

    def waiter():
        try:
            storage.tpc_begin(TransactionMetaData())
            outcome["result"] = "began"
        except Exception as exc:
            outcome["result"] = exc

    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    # The waiter is blocked on the commit lock until the storage closes.
    wait_until(lambda: thread.is_alive(), message="waiter started")
    assert "result" not in outcome
    storage.close()
    thread.join(30)
    assert not thread.is_alive()
    assert isinstance(outcome["result"], ClientDisconnected)
    with pytest.raises(ClientDisconnected):
        storage.tpc_begin(TransactionMetaData())
