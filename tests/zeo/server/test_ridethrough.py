"""The short version of the zeo ride-through soak (``make soak`` runs 100
restarts).

``bench/soak/zeo_ridethrough.py`` runs ZODB's racetest models in client
processes while a real runzeo is restarted, cleanly and with SIGKILL, on the
same FileStorage; every read and every reconnected cache is then checked
against the committed history.
"""

import json
import subprocess
import sys

from tests.support import ROOT

SOAK = ROOT / "bench" / "soak" / "zeo_ridethrough.py"


def test_race_checks_ride_through_server_restarts(tmp_path):
    result = subprocess.run(
        [sys.executable, str(SOAK), "--restarts", "4", "--workers", "2"]
        + ["--threads", "3", "--directory", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert (figures["clean_stops"], figures["kills"]) == (2, 2)
    # Every thread committed after every restart, by itself.
    assert figures["commits"] >= 6 * 5
    assert figures["reads_checked"] > figures["commits"]
    assert figures["invariant_failures"] == 0
    assert figures["stale_reads"] == 0
    # Caches were copied after reconnects and each record matched the history.
    assert figures["caches_checked"] > 0
    assert figures["cache_mismatches"] == 0, figures["examples"]
    reconnects = figures["reconnects"]
    assert sum(reconnects.values()) >= 4
