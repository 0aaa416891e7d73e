"""The short version of the dispatch crash soak (``make soak`` runs 10,000
transitions and 100 kills).

``bench/soak/dispatch_crash.py`` runs a real runzeo, a real papa kernel and
``dispatch supervise`` with two consumers on each of two queues and two
command runners, and kills random consumers, runners and the supervisor
with SIGKILL while a three-step recipe runs: every message must be handled
with exactly one committed effect, none lost or dead-lettered, and no step
program started twice.
"""

import json
import subprocess
import sys

from tests.support import ROOT

SOAK = ROOT / "bench" / "soak" / "dispatch_crash.py"


def test_every_message_is_handled_once_across_kills(tmp_path):
    result = subprocess.run(
        [sys.executable, str(SOAK), "--transitions", "300", "--kills", "5"]
        + ["--directory", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["transitions"] == figures["messages"] == 300
    assert figures["kills"] == 5
    assert sum(figures["kills_by_kind"].values()) == 5
    assert (figures["effects_min"], figures["effects_max"]) == (1, 1)
    assert figures["lost"] == 0
    assert figures["dead_letters"] == 0
    assert figures["programs_twice"] == 0
    assert figures["program_starts"] == 100
    assert figures["step_programs_left"] == []
    assert figures["status"] == "succeeded"
    assert "programs started twice" in result.stderr  # the table
