"""A representative subset of the ZODB conformance suites
(tests/zeo/conformance) with runzeo serving RelStorage on the session's
PostgreSQL: the basic contract and a few blob suites are in ``make test``;
the whole suites run with ``pytest tests/zeo/conformance --storage
relstorage`` (long: a database per test, RelStorage's polling).  What
cannot apply to RelStorage is skipped there with the reason
(tests/zeo/conformance/expectations.py)."""

from __future__ import annotations

import pytest

from tests.zeo.conformance import server as harness
from tests.zeo.conformance import test_blob_suites as blob_suites
from tests.zeo.conformance import test_conflicts, test_history

#: Blob suites of test_blob_suites.py run here, by pytest id: a blob's
#: two-phase commit with a cache blob-dir (blobs in PostgreSQL) and with a
#: shared one, undo of a blob revision, and IExternalGC's deleteObject.
BLOB_CASES = (
    "NonSharedBlobs-blob_transaction_txt",
    "SharedBlobs-blob_transaction_txt",
    "NonSharedBlobs-ClientStorageNonSharedBlobsBlobUndoTests.testUndo",
    "IExternalGC-IExternalGC_test",
)


@pytest.fixture(scope="module", autouse=True)
def _postgresql(postgresql):
    harness.POSTGRESQL = postgresql


class TestRelStorageRevisions(test_history.RevisionStorageTests):
    """loadSerial and loadBefore: RelStorage's history over the wire."""

    storage_backend = "relstorage"


class TestRelStorageConflictResolution(test_conflicts.ConflictResolutionTests):
    """The server resolves conflicts (``_p_resolveConflict``) on RelStorage."""

    storage_backend = "relstorage"


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("test", "layers"),
    [case for case in blob_suites.collect_cases() if case.id in BLOB_CASES],
)
def test_blob_suite_on_relstorage(test, layers, tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "STORAGE", "relstorage")
    monkeypatch.chdir(tmp_path)
    try:
        blob_suites.check_blob_case(test, layers)
    finally:
        while blob_suites.STARTED_SERVERS:
            blob_suites.STARTED_SERVERS.pop().stop()


def test_the_blob_cases_exist():
    ids = {case.id for case in blob_suites.collect_cases()}
    assert set(BLOB_CASES) <= ids
