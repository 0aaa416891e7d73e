"""A representative subset of the ZODB conformance suites
(tests/zeo/conformance) with runzeo serving RelStorage on the session's
PostgreSQL: the basic contract is in ``make test``; the whole suites run
with ``pytest tests/zeo/conformance --storage relstorage`` (long: a
database per test, RelStorage's polling).  What cannot apply to RelStorage
is skipped there with the reason (tests/zeo/conformance/expectations.py)."""

from __future__ import annotations

import pytest

from tests.zeo.conformance import server as harness
from tests.zeo.conformance.test_conflicts import ConflictResolutionTests
from tests.zeo.conformance.test_history import RevisionStorageTests


@pytest.fixture(scope="module", autouse=True)
def _postgresql(postgresql):
    harness.POSTGRESQL = postgresql


class TestRelStorageRevisions(RevisionStorageTests):
    """loadSerial and loadBefore: RelStorage's history over the wire."""

    storage_backend = "relstorage"


class TestRelStorageConflictResolution(ConflictResolutionTests):
    """The server resolves conflicts (``_p_resolveConflict``) on RelStorage."""

    storage_backend = "relstorage"
