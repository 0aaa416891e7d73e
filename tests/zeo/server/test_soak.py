"""The short version of the zeo crash soak (``make soak`` runs 100 kills).

``bench/soak/zeo_crash.py`` kills a real runzeo with SIGKILL under real
client processes that commit records, or blobs; here 6 kills (one during a
pack would need 10), each followed by a restart on the same FileStorage.
"""

import pytest

from tests.support import run_soak


@pytest.mark.parametrize("blobs", [False, True], ids=["records", "blobs"])
def test_no_acknowledged_commit_is_lost_across_server_kills(tmp_path, blobs):
    figures, _ = run_soak(
        "zeo_crash",
        *("--kills", 6, "--workers", 3, "--directory", tmp_path),
        *(["--blobs"] if blobs else []),
    )
    assert figures["kills"] == 6 and figures["workers"] == 3
    assert figures["blobs"] is blobs
    # Every worker committed after every restart, by itself.
    assert figures["acknowledged_commits"] >= 3 * 6
    assert figures["lost"] == 0
    assert figures["partial"] == 0
    assert figures["fstest_fsrefs_problems"] == []


def test_connections_that_come_and_go_give_back_their_resources(tmp_path):
    # bench/soak/zeo_resources.py: clean hang-ups, hang-ups mid-frame, mid-
    # transaction and holding the commit lock; 1,000 in make soak.
    figures, _ = run_soak(
        "zeo_resources", "--connections", 200, "--directory", tmp_path
    )
    assert figures["connections"] == 200
    assert figures["fds_after"] == figures["fds_before"]
    assert figures["rss_growth_mib"] < 32
    assert figures["commit_after"] is True
    log = (tmp_path / "runzeo.log").read_text()
    # The voters and the abandoned transactions were each aborted.
    assert log.count("disconnected during") >= 200 // 5
