"""The runtime's one conflict-retry loop, on a real database with real
conflicts between two connections (opened in this process: a
MappingStorage, or RelStorage with ``--storage relstorage``)."""

import transaction
import ZODB
from persistent.mapping import PersistentMapping

from dispatch.runtime.retrying import (
    COMMITTED,
    CONFLICTED,
    DECLINED,
    commit_retrying,
)


def open_two(storage):
    database = ZODB.DB(storage)
    with database.transaction() as connection:
        connection.root()["counter"] = PersistentMapping(value=0)
    managers = [transaction.TransactionManager() for _ in range(2)]
    connections = [database.open(manager) for manager in managers]
    return database, managers, connections


def value(database):
    with database.transaction() as connection:
        return connection.root()["counter"]["value"]


def test_a_conflict_is_retried_in_a_new_transaction(direct_storage):
    database, (mine, theirs), (my_connection, their_connection) = open_two(
        direct_storage
    )
    tries = []
    conflicts = []

    def increment(retry):
        tries.append(retry)
        counter = my_connection.root()["counter"]
        if retry == 0:
            # Another writer commits the same object first: our commit conflicts.
            their_connection.root()["counter"]["value"] = 10
            theirs.commit()
        counter["value"] += 1
        return True

    outcome = commit_retrying(mine, increment, lambda: conflicts.append(1))
    assert outcome == COMMITTED
    assert tries == [0, 1]
    assert conflicts == [1]
    assert value(database) == 11
    database.close()


def test_declined_work_is_aborted(direct_storage):
    database, (mine, _theirs), (my_connection, _their) = open_two(direct_storage)

    def change_then_decline(retry):
        my_connection.root()["counter"]["value"] = 99
        return False

    assert commit_retrying(mine, change_then_decline) == DECLINED
    assert value(database) == 0
    assert my_connection.root()["counter"]["value"] == 0
    database.close()


def test_work_that_always_conflicts_gives_up_after_its_tries(direct_storage):
    database, (mine, theirs), (my_connection, their_connection) = open_two(
        direct_storage
    )
    tries = []

    def always_beaten(retry):
        tries.append(retry)
        my_connection.root()["counter"]["value"] = -1
        their_connection.root()["counter"]["value"] = retry
        theirs.commit()
        return True

    assert commit_retrying(mine, always_beaten, tries=3) == CONFLICTED
    assert tries == [0, 1, 2]
    assert value(database) == 2  # theirs only: ours never committed
    database.close()
