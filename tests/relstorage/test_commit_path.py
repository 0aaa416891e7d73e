"""What a commit through runzeo on RelStorage costs PostgreSQL: the size
info sent after each commit once opened two new PostgreSQL connections
(``len`` and ``getSize``), the cause of ~300 ms commits on a loaded machine."""

from __future__ import annotations

import psycopg2

from tests.relstorage.test_runzeo import TIMEOUT, open_db
from tests.support import wait_until

COMMITS = 20


def sessions(dsn: str) -> int:
    """Sessions PostgreSQL has counted on *dsn*'s database (PostgreSQL 14+)."""
    connection = psycopg2.connect(dsn)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
            )
            return cursor.fetchone()[0]
    finally:
        connection.close()


def test_commits_open_no_new_database_connections(servers):
    server = servers.start()
    db = open_db(server)
    try:
        with db.transaction() as connection:
            connection.root()["value"] = -1
        before = sessions(servers.dsn)
        for value in range(COMMITS):
            with db.transaction() as connection:
                connection.root()["value"] = value
        opened = sessions(servers.dsn) - before
        # Ours to count (1), and a size measure in the background (2) when
        # the commits took more than SIZE_INFO_AGE; before, 2 per commit.
        assert opened <= 5, f"{opened} PostgreSQL sessions for {COMMITS} commits"
        with db.transaction() as connection:
            assert connection.root()["value"] == COMMITS - 1
        # RelStorage estimates the length (0 until ANALYZE); the size is real.
        assert db.storage.getSize() > 0
    finally:
        db.close()


def test_size_info_interval_zero_measures_again_after_a_commit(servers):
    # size-info-interval 0: the first commit's size info starts a new
    # measure at once (two PostgreSQL sessions: len and getSize); with the
    # default 5 s the test above sees at most a few for 20 commits.
    server = servers.start(**{"size-info-interval": "0"})
    db = open_db(server)
    try:
        before = sessions(servers.dsn)
        for value in range(COMMITS):
            with db.transaction() as connection:
                connection.root()["value"] = value
        counts = []  # each count is a session of its own: not the server's

        def measured() -> bool:
            counts.append(sessions(servers.dsn))
            return counts[-1] - before - len(counts) >= 2

        wait_until(measured, TIMEOUT, message="a size measure after the commits")
    finally:
        db.close()
