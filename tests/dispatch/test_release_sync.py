"""The supervisor releases the claim an instance committed just before it
died: ``release_claims`` makes a round trip to zeo before it reads, so its
snapshot holds that commit (found by the dispatch crash soak: a claim
committed a moment before the SIGKILL was missed and waited for its lease).

The claims are committed through another client of the same server, as the
instance's would be, and released at once, many times: without the round
trip the supervisor's client has often not yet applied the invalidation.
"""

import transaction

import zeo
from dispatch.runtime.service import Service
from dispatch.runtime.supervisor import release_claims
from dispatch.state import broker, model
from tests.dispatch.test_broker import read, start

ROUNDS = 30
DEAD_PID = 999_999_999  # no process of this host has it


def test_a_claim_committed_just_before_the_death_is_released(zeo_database):
    run_id = start(
        zeo_database,
        {"1": {"queue": "q"}, "start": [[1, n] for n in range(ROUNDS)]},
        now=None,
    )
    instance = zeo.DB(zeo_database.address)
    manager = transaction.TransactionManager()
    connection = instance.open(manager)
    released = []
    try:
        for _round in range(ROUNDS):
            # The supervisor's client reads the queue (caching it) first.
            read(zeo_database, lambda dispatch: len(dispatch.queues["q"].ready))
            with manager:
                dispatch = connection.root()[model.ROOT_KEY]
                claimed = broker.claim(dispatch, "q", "dead", pid=DEAD_PID)
            released += release_claims(zeo_database, "q", DEAD_PID, "died", Service)
            assert released[-1:] == [claimed.id]
    finally:
        connection.close()
        instance.close()

    def states(dispatch):
        return {m.state for m in dispatch.runs[run_id].messages.values()}

    assert read(zeo_database, states) == {model.PENDING}
    assert len(set(released)) == ROUNDS
