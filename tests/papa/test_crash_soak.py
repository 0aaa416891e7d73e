"""The short version of the papa kill soak (``make soak`` runs 50 kills).

``bench/soak/papa_crash.py`` kills a real kernel with a state directory with
SIGKILL under real children (spilled and piped) and, when the test cluster
answers, a real Slurm job, while a client watches through the restarts;
here 3 kills, 5 children and 1 job.
"""

from tests.support import run_soak
from tests.support.slurm import sinfo_answer


def test_nothing_is_lost_across_kernel_kills(tmp_path):
    jobs = 0 if sinfo_answer() else 1
    figures, stdout = run_soak(
        "papa_crash",
        *("--kills", 3, "--children", 5, "--slurm-jobs", jobs),
        *("--directory", tmp_path),
        timeout=300,
    )
    assert (figures["kills"], figures["children"]) == (3, 5)
    assert figures["slurm_jobs"] == jobs
    assert figures["watches"] >= 4  # the watch came back after every kill
    assert figures["lines"] > 0
    assert figures["lost"] == 0
    assert figures["restarts_with_wrong_lines"] == 0
    assert figures["not_readopted"] == 0
    assert figures["wrong_codes"] == 0
    assert figures["values_lost"] == 0
    assert figures["came_back"] == []
    assert "lost" in stdout.splitlines()[1]  # the summary table
