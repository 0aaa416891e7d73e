"""``write_retried``: a write that conflicts with another client's commit
runs again on a fresh snapshot (``dispatch go``, the console and the run
index build use it), on a real runzeo with two real clients."""

import pytest
from ZODB.POSException import ConflictError

import zeo
from dispatch.state.database import dispatch_state, write_retried


@pytest.fixture
def clients(runzeo):
    ours, theirs = zeo.DB(runzeo.address), zeo.DB(runzeo.address)
    try:
        yield ours, theirs
    finally:
        ours.close()
        theirs.close()


def changer(theirs, conflicts):
    """A write that, its first *conflicts* times, lets the other client
    commit a change to the same object after it read it."""
    calls = []

    def change(dispatch):
        calls.append(getattr(dispatch, "probe", None))
        if len(calls) <= conflicts:
            with dispatch_state(theirs, write=True) as other:
                other.probe = f"theirs {len(calls)}"
        dispatch.probe = f"ours {len(calls)}"
        return len(calls)

    return change, calls


def test_a_conflicting_write_runs_again_on_a_fresh_snapshot(runzeo, clients):
    ours, theirs = clients
    change, calls = changer(theirs, conflicts=2)
    assert write_retried(ours, change) == 3
    # Each try saw what was committed before it began: the other's change.
    assert calls == [None, "theirs 1", "theirs 2"]
    # A new client reads what the server stored (``theirs`` may not have
    # had our commit's invalidation yet: it comes asynchronously).
    fresh = zeo.DB(runzeo.address)
    try:
        with dispatch_state(fresh) as state:
            assert state.probe == "ours 3"
    finally:
        fresh.close()


def test_the_last_conflict_is_raised_and_nothing_of_ours_is_stored(clients):
    ours, theirs = clients
    change, calls = changer(theirs, conflicts=10)
    with pytest.raises(ConflictError):
        write_retried(ours, change, attempts=3)
    assert len(calls) == 3
    with dispatch_state(theirs) as state:
        assert state.probe == "theirs 3"
