"""dispatch's consumers on two runzeo over one PostgreSQL: a queue shared
through two servers, each message handled once (claims made through
different servers conflict in PostgreSQL, and the loser claims again).
It failed 2 runs in 9 while a commit made between a server's last poll
and its own commit was dropped (see docs/scaling.rst)."""

from __future__ import annotations

import json

import zeo
from dispatch.state import model
from tests.dispatch.test_broker import read, start
from tests.dispatch.test_consumers import WAIT, consumer_process, fan_in
from tests.relstorage.test_runzeo import TIMEOUT, wait_for_tid
from tests.support import wait_until


def test_consumers_on_two_servers_share_a_queue(servers):
    first, second = servers.start(), servers.start()
    database = zeo.DB(first.address, server_sync=True, wait_timeout=TIMEOUT)
    try:
        count = 40
        run_id = start(database, fan_in(count), now=None)
        # A consumer that finds nothing due stops: the second server must
        # have seen the run before its consumer starts.
        wait_for_tid(second, database.storage.lastTransaction(), "the run")
        processes = [
            consumer_process(server.address_text, "work", "drain")
            for server in (first, second)
        ]
        outputs = [process.communicate(timeout=WAIT)[0] for process in processes]
        assert [process.returncode for process in processes] == [0, 0]
        handled = [json.loads(line) for out in outputs for line in out.split()]
        assert sorted(handled) == list(range(count))
        wait_until(
            lambda: read(database, lambda d: d.runs[run_id].status) == model.SUCCEEDED,
            TIMEOUT,
            message="the first server to see the run's end",
        )
    finally:
        database.close()
    assert first.is_alive() and second.is_alive()
