"""dispatch without runzeo: the CLI and service processes open RelStorage
on the session's PostgreSQL themselves (``--zeo zodb:PATH``, a ``<zodb>``
file), and wait for commits through dispatch.direct's poller."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

import pytest

from dispatch.cli.base import CommandError, open_database
from tests.dispatch.test_run_cli import dispatch, go_through_two_services
from tests.support import wait_until
from tests.support.postgresql import relstorage_config

TIMEOUT = 60


@dataclass
class Direct:
    """Stands where test_run_cli's helpers take a runzeo: its address."""

    address_text: str


@pytest.fixture
def direct(tmp_path, database) -> Direct:
    path = tmp_path / "zodb.conf"
    path.write_text(
        "%import relstorage\n<zodb>\n" + relstorage_config(database) + "</zodb>\n"
    )
    target = Direct(f"zodb:{path}")
    # RelStorage installs its schema at the first open: once, here, not in
    # several processes at the same time.
    open_database(target.address_text).close()
    return target


def test_a_recipe_runs_through_services_on_relstorage_directly(direct, tmp_path):
    completed, stopped = go_through_two_services(direct, tmp_path)
    assert completed.returncode == 0, (completed.stderr, stopped)
    run_id = completed.stdout.splitlines()[0]
    assert f"run {run_id}: succeeded" in completed.stdout
    assert [code for code, _ in stopped] == [0, 0], stopped
    shown = dispatch(direct, "show", run_id, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "succeeded"


def test_watch_wakes_on_another_process_commit(direct):
    watching, writing = open_database(direct.address_text), None
    try:
        writing = open_database(direct.address_text)
        seen: list[bytes] = []
        arrived = threading.Event()
        handle = watching.storage.watch(
            lambda tid, oids: (seen.append(tid), arrived.set())
        )
        with writing.transaction() as connection:
            connection.root()["value"] = 1
        tid = writing.storage.lastTransaction()
        wait_until(lambda: tid in seen, TIMEOUT, message="the watch callback")
        handle.close()
    finally:
        watching.close()
        if writing is not None:
            writing.close()


def test_a_bad_zodb_file_is_a_usage_error(tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        open_database(f"zodb:{tmp_path / 'absent.conf'}")
    bad = tmp_path / "bad.conf"
    bad.write_text("<zodb>\n  <nosuchstorage>\n  </nosuchstorage>\n</zodb>\n")
    with pytest.raises(CommandError, match="not a <zodb> configuration"):
        open_database(f"zodb:{bad}")
