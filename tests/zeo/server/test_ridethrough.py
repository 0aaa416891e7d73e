"""The short version of the zeo ride-through soak (``make soak`` runs 100
restarts).

``bench/soak/zeo_ridethrough.py`` runs ZODB's racetest models in client
processes while a real runzeo is restarted, cleanly and with SIGKILL, on the
same FileStorage; every read and every reconnected cache is then checked
against the committed history.
"""

from tests.support import run_soak


def test_race_checks_ride_through_server_restarts(tmp_path):
    figures, _ = run_soak(
        "zeo_ridethrough",
        *("--restarts", 4, "--workers", 2, "--threads", 3),
        *("--directory", tmp_path),
    )
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
