"""What each implementation is expected not to pass, in one place.

Keys are ``fnmatch`` patterns on the part of a test id after the file name,
e.g. ``"BasicStorageTests::testBasics"`` or ``"test_blob_suite[*]"``.

- ``SLOW``: long tests, marked ``slow`` for both implementations.
- ``*_BUGS``: a real bug, marked ``xfail(strict=True)``: the suite stays
  green, the bug stays visible, and the mark must go when it is fixed
  (a strict xfail that passes fails the run).  Each reason points to
  ``/work/briefs/conformance-failures.md`` where the diagnosis is.
- ``*_LIMITATIONS``: a genuine, documented limitation: skipped, the reason
  names it.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

import pytest

FAILURES_FILE = "/work/briefs/conformance-failures.md"

#: Tests that take more than ~10 s on a 2-core machine (the disconnect race
#: test opens 64 clients that reconnect over and over: about 30 s).
SLOW = [
    "*::test_race_external_invalidate_vs_disconnect",
]

OURS_BUGS: dict[str, str] = {}

OURS_LIMITATIONS: dict[str, str] = {}

REAL_BUGS: dict[str, str] = {}

REAL_LIMITATIONS: dict[str, str] = {
    "*::testPackAllRevisionsNoGC": (
        "real ZEO's ClientStorage.pack has no gc argument (ZEO 6.2 can only "
        "pack with the server's pack-gc setting)"
    ),
}


@dataclass
class Table:
    """The marks of one implementation, looked up by test key."""

    bugs: dict[str, str] = field(default_factory=dict)
    limitations: dict[str, str] = field(default_factory=dict)

    def marks(self, key: str) -> list:
        marks = []
        if any(fnmatch.fnmatchcase(key, pattern) for pattern in SLOW):
            marks.append(pytest.mark.slow)
        for pattern, reason in self.limitations.items():
            if fnmatch.fnmatchcase(key, pattern):
                marks.append(pytest.mark.skip(reason=reason))
        for pattern, reason in self.bugs.items():
            if fnmatch.fnmatchcase(key, pattern):
                marks.append(
                    pytest.mark.xfail(
                        strict=True, reason=f"bug: {reason}, see {FAILURES_FILE}"
                    )
                )
        return marks


#: Mixed runs (``--impl real-client`` / ``real-server``), by test key.
REAL_CLIENT_BUGS: dict[str, str] = {}
REAL_CLIENT_LIMITATIONS: dict[str, str] = dict(REAL_LIMITATIONS)
REAL_SERVER_BUGS: dict[str, str] = {}
REAL_SERVER_LIMITATIONS: dict[str, str] = {
    "*::testPackAllRevisionsNoGC": (
        "real ZEO's server has no pack without garbage collection (our client "
        "raises Unsupported saying so)"
    ),
}


#: With ``--storage relstorage``, added to the implementation's table.
RELSTORAGE_BUGS: dict[str, str] = {}
RELSTORAGE_LIMITATIONS: dict[str, str] = {
    "*::testPackAllRevisionsNoGC": (
        "RelStorage's pack() has no gc argument (its pack-gc is a <relstorage> "
        "setting): our client raises saying so"
    ),
    "*::testUndo*ConflictResolution*": (
        "RelStorage does not resolve conflicts at undo: an object changed "
        "since is an UndoError"
    ),
    "*::testTransactionalUndoIterator": (
        "RelStorage's iterator gives undo records their data, not FileStorage's "
        "back-pointer (data_txn is None)"
    ),
}

#: Examples of ZODB's blob doctests (test_blob_suites.py) that cannot apply
#: to RelStorage, by their source line: their failure is not counted, the
#: rest of the doctest must pass.
RELSTORAGE_DOCTEST_EXAMPLES: dict[str, str] = {
    "len(storage)": (
        "RelStorage's len() is PostgreSQL's estimate of the table's rows "
        "(pg_class.reltuples, 0 until the table is analyzed)"
    ),
    "len(db.storage)": "RelStorage's len() is PostgreSQL's estimate",
    "storage.loadBlob(oid1, s1) # doctest: +ELLIPSIS": (
        "RelStorage's blob cache directory still holds a blob that pack "
        "removed from the database, and serves it (RelStorage directly too)"
    ),
}


def for_implementation(implementation: str, storage: str = "file") -> Table:
    table = {
        "ours": Table(OURS_BUGS, OURS_LIMITATIONS),
        "real": Table(REAL_BUGS, REAL_LIMITATIONS),
        "real-client": Table(REAL_CLIENT_BUGS, REAL_CLIENT_LIMITATIONS),
        "real-server": Table(REAL_SERVER_BUGS, REAL_SERVER_LIMITATIONS),
    }[implementation]
    if storage == "relstorage":
        table = Table(
            {**table.bugs, **RELSTORAGE_BUGS},
            {**table.limitations, **RELSTORAGE_LIMITATIONS},
        )
    return table
