"""Options and expectations of the conformance suites.

``pytest tests/zeo/conformance --impl real`` runs the same suites with real
ZEO 6.2 on both sides (the test process must then import it: run pytest with
``PYTHONPATH=.peers/zeo``).  That checks the harness and gives the baseline
of what real ZEO passes.  ``--impl real-client`` (real ZEO's client against
our server, also with that PYTHONPATH) and ``--impl real-server`` (our client
against real ZEO's server) run the whole suites as an interoperability
check.  ``ZEOPAPA_CONFORMANCE_IMPL=real`` does the same
when this directory is not named on the command line.

Expected failures and skips live in ``expectations.py``, one table per
implementation, and are applied here at collection time.
"""

import os
from pathlib import Path

import pytest

from . import expectations
from . import server as harness

HERE = Path(__file__).resolve().parent


def pytest_addoption(parser):
    parser.addoption(
        "--impl",
        choices=tuple(harness.SIDES),
        default=os.environ.get("ZEOPAPA_CONFORMANCE_IMPL", "ours"),
        help="conformance suites: our zeo on both sides (default), real ZEO "
        "6.2 on both sides (real), or mixed (real-client: real ZEO's client "
        "against our server; real-server: ours against real ZEO's server); "
        "a real client needs PYTHONPATH=.peers/zeo",
    )


@pytest.fixture(scope="session", autouse=True)
def _relstorage_database(request):
    """With ``--storage relstorage``: the session's PostgreSQL for the pools
    (session scope: set before any class's server starts)."""
    if harness.STORAGE == "relstorage":
        harness.POSTGRESQL = request.getfixturevalue("postgresql")


def pytest_configure(config):
    harness.IMPLEMENTATION = config.getoption("impl", harness.IMPLEMENTATION)
    harness.STORAGE = config.getoption("storage", harness.STORAGE)
    if harness.client_implementation() == "real":
        try:
            import ZEO  # noqa: F401
        except ImportError:
            raise pytest.UsageError(
                "--impl real needs real ZEO importable: run pytest with "
                "PYTHONPATH=.peers/zeo (after `make peers`)"
            )


def pytest_collection_modifyitems(config, items):
    table = expectations.for_implementation(harness.IMPLEMENTATION, harness.STORAGE)
    for item in items:
        path = Path(str(item.path)).resolve()
        if HERE not in path.parents:
            continue
        key = item.nodeid.split("::", 1)[1]
        for mark in table.marks(key):
            item.add_marker(mark)
