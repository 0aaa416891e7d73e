"""ZODB's reusable blob suites and the IExternalGC doctest over our server.

``ZODB.tests.testblob.storage_reusable_suite`` and
``ZODB.tests.PackableStorage.IExternalGC_suite`` are unittest suites built
by functions from a storage factory ``create_storage(name, blob_dir)``.  Our
factory starts a server process with a blob storage for every storage the
suite creates (the doctests create several and expect them independent) and
returns a client whose ``close`` also stops that server.

The suites carry zope.testrunner layers (a temporary working directory, a
fake clock for some); pytest knows nothing of layers, so each test of a
suite becomes one pytest test that sets its layers up and down around it.
"""

from __future__ import annotations

import os
import unittest
from pathlib import Path

import pytest
import ZODB.tests.testblob
from ZODB.tests import PackableStorage

from . import expectations
from . import server as harness

#: Every server the factories start, so that none outlives its test even
#: when a doctest fails before closing its storage.
STARTED_SERVERS: list[harness.ServerProcess] = []


def start_blob_server(
    name: str, blob_dir: str, shared: bool, pack_gc: bool = True
) -> harness.ServerProcess:
    """A server for one blob storage, with its files in the current directory
    (with ``--storage relstorage``: a RelStorage on a new database, keeping
    its blobs in the database unless *shared*; see ``StorageSpec``)."""
    here = Path.cwd()
    server_blob_dir = here / (blob_dir if shared else f"server-{blob_dir}")
    spec = harness.StorageSpec(
        name="1",
        path=here / f"{name}.fs",
        kind="blob",
        blob_dir=server_blob_dir,
        pack_gc=pack_gc,
        dsn=harness.new_dsn() if harness.STORAGE == "relstorage" else None,
        shared_blobs=shared,
    )
    server = harness.ServerProcess(here / f"zeo-{name}", [spec], msgpack=True)
    STARTED_SERVERS.append(server)
    return server.start()


def create_storage(name: str, blob_dir: str, shared: bool, pack_gc: bool = True):
    """A client of a fresh server; closing the client stops the server."""
    server = start_blob_server(name, blob_dir, shared, pack_gc)
    options = {"blob_dir": os.path.abspath(blob_dir), "wait_timeout": 60}
    if shared:
        options["shared_blob_dir"] = True
    client = harness.make_client(server.address, "1", **options)
    close_client = client.close

    def close():
        try:
            close_client()
        finally:
            server.stop()

    client.close = close
    return client


def create_nonshared(name, blob_dir):
    return create_storage(name, blob_dir, shared=False)


def create_shared(name, blob_dir):
    return create_storage(name, blob_dir, shared=True)


def create_for_external_gc():
    """The IExternalGC doctest wants a storage that does not gc on pack."""
    client = create_storage("data", "blobs", shared=False, pack_gc=False)
    if harness.client_implementation() == "real":
        _clear_caches_after_pack(client)
    return client


def _clear_caches_after_pack(client):
    # Real ZEO documents that packing leaves old revisions in client caches
    # (object and blob); its own test-suite clears both after a pack, and
    # so do we for the real baseline.
    import ZEO.ClientStorage

    pack = client.pack

    def pack_and_clear(t=None, referencesf=None):
        pack(t, referencesf, wait=True)
        client._cache.clear()
        ZEO.ClientStorage._check_blob_cache_size(client.blob_dir, 0)

    client.pack = pack_and_clear


#: Examples of blob_transaction.txt that rely on file permissions being
#: enforced: root may open a read-only committed blob file for writing (and
#: the second example then reads the file the first one truncated).
PERMISSION_EXAMPLES = (
    "open(blob.committed(), 'w')",
    "loadBlob(blob._p_oid, oldserial)",
)
DOCTEST_SEPARATOR = "-" * 70


def without_examples(text: str, examples) -> str:
    """A doctest failure report without the failures of *examples* (parts
    of their source), or "" when nothing else failed."""
    sections = text.split(DOCTEST_SEPARATOR)
    kept = [
        section
        for section in sections[1:]
        if "Failed example:" in section
        and not any(example in section for example in examples)
    ]
    return DOCTEST_SEPARATOR.join([sections[0], *kept]) if kept else ""


def examples_that_cannot_pass() -> list[str]:
    """Root may write read-only files; RelStorage's that cannot apply
    (expectations.py, matched on the whole source line)."""
    examples = list(PERMISSION_EXAMPLES) if os.geteuid() == 0 else []
    if harness.STORAGE == "relstorage":
        examples += [
            f"Failed example:\n    {source}\n"
            for source in expectations.RELSTORAGE_DOCTEST_EXAMPLES
        ]
    return examples


def flatten(test, layers=()):
    """Yield ``(test, layers)`` for every test of a suite, outer layer first."""
    layer = getattr(test, "layer", None)
    if layer is not None:
        layers = (*layers, layer)
    if isinstance(test, unittest.TestSuite):
        for member in test:
            yield from flatten(member, layers)
    else:
        yield test, layers


def short_name(test) -> str:
    identifier = test.id()
    if identifier.endswith("_txt") or identifier.endswith("_test"):
        return identifier.rsplit(".", 1)[-1]
    return ".".join(identifier.split(".")[-2:])


def collect_cases():
    # blob_packing.txt (test_packing=True) is left out, as ZEO's suite does:
    # it checks the packed-away files through the client's fshelper (the
    # client's blob cache, which a server-side pack does not touch) and
    # computes pack times on the fake clock of the client process.
    suites = {
        "NonSharedBlobs": ZODB.tests.testblob.storage_reusable_suite(
            "ClientStorageNonSharedBlobs",
            create_nonshared,
            test_blob_storage_recovery=True,
        ),
        "SharedBlobs": ZODB.tests.testblob.storage_reusable_suite(
            "ClientStorageSharedBlobs",
            create_shared,
            test_blob_storage_recovery=True,
        ),
        "IExternalGC": PackableStorage.IExternalGC_suite(create_for_external_gc),
    }
    for label, suite in suites.items():
        for test, layers in flatten(suite):
            yield pytest.param(test, layers, id=f"{label}-{short_name(test)}")


def run_with_layers(test, layers) -> unittest.TestResult:
    """Run one unittest test inside its layers, as zope.testrunner would."""
    result = unittest.TestResult()
    set_up = []
    try:
        for layer in layers:
            getattr(layer, "setUp", lambda: None)()
            set_up.append(layer)
        for layer in layers:
            getattr(layer, "testSetUp", lambda: None)()
        try:
            test(result)
        finally:
            for layer in reversed(layers):
                getattr(layer, "testTearDown", lambda: None)()
    finally:
        for layer in reversed(set_up):
            getattr(layer, "tearDown", lambda: None)()
    return result


@pytest.fixture
def stop_servers():
    yield
    while STARTED_SERVERS:
        STARTED_SERVERS.pop().stop()


@pytest.mark.timeout(600)
@pytest.mark.parametrize(("test", "layers"), list(collect_cases()))
def test_blob_suite(test, layers, tmp_path, monkeypatch, stop_servers):
    monkeypatch.chdir(tmp_path)
    check_blob_case(test, layers)


def check_blob_case(test, layers) -> None:
    """Run one test of a suite in the current directory; fail with what
    failed (but the examples that cannot pass), skip if it skipped."""
    result = run_with_layers(test, layers)
    failures = result.failures
    examples = examples_that_cannot_pass()
    if examples:
        failures = [(case, without_examples(text, examples)) for case, text in failures]
        failures = [(case, text) for case, text in failures if text]
    problems = [
        f"{kind} in {case.id()}:\n{text}"
        for kind, found in (("FAILURE", failures), ("ERROR", result.errors))
        for case, text in found
    ]
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
    if result.skipped and not result.testsRun - len(result.skipped):
        pytest.skip("; ".join(reason for _, reason in result.skipped))
    assert result.testsRun >= 1
